// Errors that say what to do: the mistakes a new user makes first, each answered with what went wrong and what to
// do instead (issue 36, item 7), from the API and from the command line.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BackendError,
  backendInfo,
  CheckpointError,
  DiffusionNFT,
  DisposedError,
  FlowMatchingTrainer,
  loadCheckpoint,
  RewardError,
  saveAdapter,
  savePeftAdapter,
  tasks,
  VelocityNet,
} from '../lib/index.js';
import { SHAPES_BASE } from '../lib/jobs/demo-shapes.js';
import { closestName, didYouMean, editDistance } from '../lib/options/schema.js';
import { startCli } from './cli-process.js';
import { cli, tempFolder } from './helpers.js';

const dir = tempFolder('errors');
const toy = () => VelocityNet.create(tasks.toy2d.config, { seed: 1 });
const PROMPTS = [tasks.toy2d.prompts[0] as tasks.toy2d.Toy2dPrompt];

describe('errors that say what to do', () => {
  it('a file that is not safetensors says so', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'these are my notes, not a model\n');
    const error = await loadCheckpoint(text).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message).toMatch(/notes\.txt: not a safetensors file: header length \d+ exceeds/);
  });

  it('an adapter given to loadCheckpoint points to loadAdapter', async () => {
    const net = toy();
    net.enableLora({ rank: 2 });
    const own = join(dir, 'adapter.safetensors');
    await saveAdapter(own, net);
    await expect(loadCheckpoint(own)).rejects.toThrow(
      /adapter\.safetensors: a LoRA adapter, not a checkpoint: use loadAdapter\(path, net\)/,
    );
    const peft = join(dir, 'peft');
    await savePeftAdapter(peft, net);
    await expect(loadCheckpoint(join(peft, 'adapter_model.safetensors'))).rejects.toThrow(
      /a LoRA adapter.*loadAdapter/,
    );
    net.dispose();
  });

  it("device 'cuda' where it is unavailable names the reason and suggests 'auto'", () => {
    const info = backendInfo();
    if (info.cuda) return; // a GPU machine: 'cuda' works (test/device.test.ts)
    const error = (() => {
      try {
        VelocityNet.create(tasks.toy2d.config, { device: 'cuda' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(BackendError);
    expect((error as Error).message).toContain(info.cudaUnavailableReason as string);
    expect((error as Error).message).toMatch(/device 'auto' uses the GPU when there is one and the CPU otherwise/);
    // A CUDA build on a machine without a driver says that there is none (the C++ suite checks the wording).
    if (info.compiledWithCuda && info.driverCudaVersion === undefined && info.driverVersion === undefined) {
      expect(info.cudaUnavailableReason).toMatch(/^no NVIDIA driver found/);
    }
  });

  it('an unknown option suggests the closest known one', () => {
    const net = toy();
    const rewards = { name: 'red', fn: tasks.toy2d.rewards.red };
    expect(() => new DiffusionNFT(net, { prompts: PROMPTS, rewards, groupsize: 4 } as never)).toThrow(
      /options: unknown option 'groupsize'; did you mean 'groupSize'\?$/,
    );
    expect(() => new DiffusionNFT(net, { prompts: PROMPTS, rewards, gropus: 4 } as never)).toThrow(
      /did you mean 'groups'\?/,
    );
    expect(() => new DiffusionNFT(net, { prompts: PROMPTS, rewards, schedule: 'cosin' } as never)).toThrow(
      /options\.schedule must be .*, got cosin; did you mean 'cosine'\?$/,
    );
    net.dispose();
    expect(editDistance('groupsize', 'groupSize')).toBe(1);
    expect(closestName('groupsize', ['groups', 'groupSize'])).toBe('groupSize');
    expect(closestName('banana', ['groups', 'groupSize'])).toBeUndefined();
    expect(didYouMean('banana', ['a', 'b'])).toBe(' (known: a, b)');
  });

  it('a reward that returns strings is a RewardError naming it', async () => {
    const net = toy();
    const strings = { name: 'as-text', fn: (x: { shape: readonly number[] }) => Array(x.shape[0]).fill('0.5') };
    const nft = new DiffusionNFT(net, { prompts: PROMPTS, rewards: strings as never, groups: 2, groupSize: 2 });
    const error = await nft.epoch().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RewardError);
    expect((error as RewardError).reward).toBe('as-text');
    expect((error as Error).message).toBe(
      `reward 'as-text' returned the string "0.5" for sample 0: a reward returns numbers`,
    );
    expect(nft.epochCount).toBe(0);
    net.dispose();
  });

  it('a trainer refuses a disposed network', () => {
    const net = toy();
    net.dispose();
    expect(() => new FlowMatchingTrainer(net)).toThrow(DisposedError);
    expect(() => new FlowMatchingTrainer({} as never)).toThrow(/net must be a VelocityNet/);
  });
});

describe('command-line errors that say what to do', () => {
  it('a number flag that is not a number says so', () => {
    const minutes = cli('demo', '--minutes', 'abc');
    expect(minutes.status).not.toBe(0);
    expect(minutes.err).toMatch(/'--minutes <n>' argument 'abc' is invalid\. not a number: expected a positive number/);
    const negative = cli('demo', '--minutes', '-2');
    expect(negative.err).toMatch(/out of range: expected a positive number/);
    const epochs = cli('train', '--epochs', '2.5');
    expect(epochs.err).toMatch(/not an integer: expected an integer in \[1, 1000000000\]/);
  });

  it('a mistyped value, flag or config field gets the closest', () => {
    const method = cli('train', '--epochs', '1', '--method', 'nfts');
    expect(method.err).toMatch(/--method must be 'nft', .*, got nfts; did you mean 'nft'\?/);
    const solver = cli('toy2d', '--solver', 'huen');
    expect(solver.err).toMatch(/did you mean 'heun'\?/);
    const flag = cli('train', '--minuts', '1');
    expect(flag.err).toMatch(/unknown option '--minuts'\n\(Did you mean --minutes\?\)/);
    const config = join(dir, 'typo.json');
    writeFileSync(config, JSON.stringify({ evalEvry: 3 }));
    const field = cli('train', '--epochs', '1', '--config', config);
    expect(field.err).toMatch(/unknown option 'evalEvry'; did you mean 'evalEvery'\?/);
  });

  it('train starts from the shipped base by default, says where it is, and shows its evaluation going', async () => {
    const out = join(dir, 'default-base');
    const { child, match } = await startCli(
      ['train', '--epochs', '1', '--out', out],
      /base model: (.*)\n[\s\S]*evaluating epoch 0 \[[#.]+\] samples \d+\/\d+/,
    );
    child.kill('SIGKILL');
    expect(match[1]).toBe(`${SHAPES_BASE} (shipped in the package)`);
    const resume = cli('train', '--resume', '--epochs', '2');
    expect(resume.status).toBe(1);
    expect(resume.err).toMatch(/--resume needs --base/);
  });
});
