// The DiffusionNFT trainer on toy2d: it raises the reward (the positive-only ablation collapses), reports an epoch's
// statistics with the soft update of θ_old, trains the same in micro-batches, resumes bit for bit, stops on abort,
// and rejects bad rewards and options leaving the model unchanged.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DiffusionNFT,
  type DiffusionNFTOptions,
  etaAt,
  type Prompt,
  sample,
  sampleSde,
  Tensor,
  tasks,
  type VelocityNet,
} from '../lib/index.js';
import { CPU, netWithParameters, onDevices, type Placement, RED, tempFolder, toy2dBaseParameters } from './helpers.js';
import { resumesOnDevice } from './trainer-device.js';

const { toy2d } = tasks;
const dir = tempFolder('nft');

// The base model: the 8-Gaussian mixture with condition dropout, so the null prompt samples the whole mixture.
let base: Float32Array;
beforeAll(async () => {
  base = await toy2dBaseParameters();
});

const baseNet = (at: Placement = CPU) => netWithParameters(toy2d.config, base, at);

const ANY = [toy2d.prompts[0]] as Prompt[];
const OPTIONS: DiffusionNFTOptions = { prompts: ANY, rewards: RED, groups: 8, groupSize: 16, lr: 1e-3, seed: 3 };

async function meanRedReward(net: VelocityNet, params: 'theta' | 'old'): Promise<number> {
  const cond = Tensor.fromInt32(new Int32Array(512), [512, 1]);
  const { x } = await sample(net, { cond, solver: 'euler', steps: 40, seed: 99, params });
  const scores = toy2d.rewards.red(x);
  return scores.reduce((s, v) => s + v, 0) / scores.length;
}

describe('DiffusionNFT', () => {
  it('raises the reward on toy2d within a few dozen epochs, and the positive-only ablation collapses', async () => {
    const net = baseNet();
    const nft = new DiffusionNFT(net, OPTIONS);
    const before = await meanRedReward(net, 'theta');
    const history = await nft.run({ epochs: 25 });
    expect(history.map((s) => s.epoch)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    const after = await meanRedReward(net, 'theta');
    expect(before).toBeLessThan(0.3);
    expect(after).toBeGreaterThan(before + 0.5);
    expect((history.at(-1) as { reward: number }).reward).toBeGreaterThan(
      (history[0] as { reward: number }).reward + 0.4,
    );
    const evaluation = await nft.evaluate({ samplesPerPrompt: 256 });
    expect(evaluation.samples).toBe(256);
    expect(evaluation.rewards.red).toBeGreaterThan(before + 0.3);

    // Paper Sec. 4.4: without the negative term, rewards collapse.
    const ablated = baseNet();
    await new DiffusionNFT(ablated, { ...OPTIONS, positiveOnly: true }).run({ epochs: 10 });
    expect(await meanRedReward(ablated, 'theta')).toBeLessThan(before / 2);
    net.dispose();
    ablated.dispose();
  });

  it('reports the statistics of an epoch and soft-updates θ_old with η = min(0.001·i, 0.5)', async () => {
    await onDevices(async (at) => {
      const net = baseNet(at);
      const nft = new DiffusionNFT(net, { ...OPTIONS, optimizerSteps: 2, ema: 0 });
      const stats = await nft.epoch();
      expect(stats.epoch).toBe(1);
      expect(stats.step).toBe(2);
      expect(stats.eta).toBeCloseTo(0.002, 12);
      expect(stats.rHistogram.reduce((s, v) => s + v, 0)).toBe(8 * 16);
      expect(Object.keys(stats.rewards)).toEqual(['red']);
      expect(stats.seconds.total).toBeGreaterThan(0);
      expect(Number.isFinite(stats.loss) && stats.gradNorm > 0).toBe(true);
      // θ_old = η·θ_base + (1 − η)·θ after the epoch.
      const theta = net.getParameters();
      const old = new Float32Array(theta.length);
      net.model.getParams(old, 'old');
      let worst = 0;
      for (let i = 0; i < theta.length; i++) {
        const expected = 0.002 * (base[i] as number) + 0.998 * (theta[i] as number);
        worst = Math.max(worst, Math.abs((old[i] as number) - expected));
      }
      expect(worst).toBeLessThan(1e-6);
      expect(etaAt('delayed', 74)).toBe(0);
      expect(etaAt('delayed', 175)).toBeCloseTo(0.75, 12);
      expect(etaAt('default', 2000)).toBe(0.5);
      net.dispose();
      return { theta, old, loss: stats.loss, gradNorm: stats.gradNorm, reward: stats.reward };
    });
  });

  it('resumes on the device it is given, bit for bit (a run trained on the GPU goes on there)', async () => {
    const small: DiffusionNFTOptions = { ...OPTIONS, groups: 2, groupSize: 8 };
    await onDevices(async (at) => {
      const path = join(dir, `nft-${at.device}-${at.precision}.safetensors`);
      const outcome = await resumesOnDevice(
        at,
        path,
        (on) => new DiffusionNFT(baseNet(on), small),
        (from, on) => DiffusionNFT.resume(from, small, on),
      );
      await expect(DiffusionNFT.resume(path, small, { ...at, gpu: 0 } as never)).rejects.toThrow(
        /DiffusionNFT.resume placement: unknown option 'gpu'/,
      );
      return outcome;
    });
  });

  it('resumes from a checkpoint to exactly the state of an uninterrupted run', async () => {
    const straight = baseNet();
    await new DiffusionNFT(straight, OPTIONS).run({ epochs: 4 });

    const first = baseNet();
    const path = join(dir, 'nft.safetensors');
    const progress: number[] = [];
    await new DiffusionNFT(first, OPTIONS).run({
      epochs: 2,
      checkpoint: { path },
      onProgress: (s) => progress.push(s.epoch),
    });
    expect(progress).toEqual([1, 2]);
    first.dispose();
    const resumed = await DiffusionNFT.resume(path, OPTIONS);
    expect(resumed.epochCount).toBe(2);
    await resumed.run({ epochs: 2 });
    expect(resumed.epochCount).toBe(4);
    for (const set of ['theta', 'old', 'ema'] as const) {
      const a = new Float32Array(straight.paramCount);
      const b = new Float32Array(straight.paramCount);
      straight.model.getParams(a, set);
      resumed.net.model.getParams(b, set);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer)), set).toBe(true);
    }
    await expect(DiffusionNFT.resume(path, { ...OPTIONS, lr: 5e-4 })).rejects.toThrow(/other options/);
    straight.dispose();
    resumed.net.dispose();
  });

  it('trains the same with micro-batches: each chunk of rows weighs by its share of the step', async () => {
    // 8 × 16 samples at 9 times: 1,152 rows per step, all at once, in the default 128, and in 100 (a last chunk of 52).
    const epochOf = async (microBatch: number) => {
      const net = baseNet();
      const stats = await new DiffusionNFT(net, { ...OPTIONS, microBatch }).epoch();
      const parameters = net.getParameters();
      net.dispose();
      return { stats, parameters };
    };
    const whole = await epochOf(0);
    for (const microBatch of [128, 100]) {
      const { stats, parameters } = await epochOf(microBatch);
      expect(stats.reward).toBe(whole.stats.reward);
      expect(stats.loss).toBeCloseTo(whole.stats.loss, 6);
      expect(stats.gradNorm).toBeCloseTo(whole.stats.gradNorm, 5);
      let diff = 0;
      for (let i = 0; i < parameters.length; i++) {
        diff = Math.max(diff, Math.abs((parameters[i] as number) - (whole.parameters[i] as number)));
      }
      expect(diff, `microBatch ${microBatch}`).toBeLessThan(1e-5);
    }
    // A checkpoint resumes under another micro-batch size: it bounds memory and is not part of the run.
    const path = join(dir, 'nft-micro.safetensors');
    const net = baseNet();
    await new DiffusionNFT(net, { ...OPTIONS, microBatch: 0 }).run({ epochs: 1, checkpoint: { path } });
    net.dispose();
    const resumed = await DiffusionNFT.resume(path, { ...OPTIONS, microBatch: 64 });
    expect(resumed.epochCount).toBe(1);
    resumed.net.dispose();
  });

  it('stops cleanly on abort between epochs', async () => {
    const net = baseNet();
    const controller = new AbortController();
    const history = await new DiffusionNFT(net, OPTIONS).run({
      epochs: 50,
      signal: controller.signal,
      onProgress: (s) => {
        if (s.epoch === 2) controller.abort();
      },
    });
    expect(history.length).toBe(2);
    net.dispose();
  });

  it('rejects bad rewards and options with clear errors, leaving the model unchanged', async () => {
    const net = baseNet();
    const nft = new DiffusionNFT(net, {
      ...OPTIONS,
      rewards: [
        RED,
        {
          name: 'flaky',
          fn: (x: Tensor) => Array.from({ length: x.shape[0] as number }, (_, i) => (i === 5 ? Number.NaN : 0)),
        },
      ],
    });
    const old = new Float32Array(net.paramCount);
    net.model.getParams(old, 'old');
    await expect(nft.epoch()).rejects.toThrow(/reward 'flaky' returned a non-finite score \(NaN\) for sample 5/);
    const short = new DiffusionNFT(net, { ...OPTIONS, rewards: { name: 'short', fn: () => [1, 2] } });
    await expect(short.epoch()).rejects.toThrow(/reward 'short' returned 2 scores for 128 samples/);
    expect(Array.from(net.getParameters())).toEqual(Array.from(base));
    expect(net.step).toBe(0);
    expect(nft.epochCount).toBe(0);

    expect(() => new DiffusionNFT(net, { ...OPTIONS, beta: 0 })).toThrow(RangeError);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, beta: -1 })).toThrow(RangeError);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, groupSize: 1 })).toThrow(/groupSize must be at least 2/);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, lrr: 1 } as DiffusionNFTOptions)).toThrow(/unknown option 'lrr'/);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, prompts: [{ tokens: [99] }] })).toThrow(
      /tokens must be integers in \[0, 16\)/,
    );
    expect(() => new DiffusionNFT(net, { ...OPTIONS, rewards: [] })).toThrow(/at least one reward/);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, eta: 2 })).toThrow(/eta/);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, solver: 'rk4' as 'euler' })).toThrow(/solver/);
    // An epoch already running refuses a second one.
    const running = new DiffusionNFT(net, OPTIONS);
    const first = running.epoch();
    await expect(running.epoch()).rejects.toThrow(/already running/);
    await first;
    net.dispose();
  });

  it('writes the model atomically: a corrupt checkpoint does not resume', async () => {
    const path = join(dir, 'corrupt.safetensors');
    writeFileSync(path, Buffer.from([1, 2, 3]));
    await expect(DiffusionNFT.resume(path, OPTIONS)).rejects.toThrow(/cannot read checkpoint/);
  });

  it("rolls out with FlowGRPO's SDE from θ_old with solver 'sde' (a = 0: the Euler ODE), and checks sdeA", async () => {
    const epochOf = async (options: Partial<DiffusionNFTOptions>) => {
      const net = baseNet();
      const stats = await new DiffusionNFT(net, { ...OPTIONS, ...options }).epoch();
      net.dispose();
      return stats;
    };
    const euler = await epochOf({ solver: 'euler' });
    const ode = await epochOf({ solver: 'sde', sdeA: 0 });
    expect(ode.reward).toBe(euler.reward);
    expect(ode.loss).toBe(euler.loss);
    const sde = await epochOf({ solver: 'sde' });
    expect(sde.reward).not.toBe(euler.reward);
    // The same as sampleSde from θ_old with the trainer's seed: the rewards of the first epoch's rollouts.
    const net = baseNet();
    const { x } = await sampleSde(net, {
      cond: Tensor.fromInt32(new Int32Array(128), [128, 1]),
      steps: 10,
      a: 0.7,
      seed: 3,
      params: 'theta',
    });
    const rewards = toy2d.rewards.red(x);
    expect(sde.reward).toBeCloseTo(rewards.reduce((s, v) => s + v, 0) / rewards.length, 12);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, solver: 'sde', sdeA: -1 })).toThrow(/sdeA/);
    expect(() => new DiffusionNFT(net, { ...OPTIONS, solver: 'ode' as 'sde' })).toThrow(/solver/);
    net.dispose();
  });

  it("rolls out with SA-Solver from θ_old with solver 'sa-solver', and learns on toy2d", async () => {
    const net = baseNet();
    const nft = new DiffusionNFT(net, { ...OPTIONS, solver: 'sa-solver' });
    const before = await meanRedReward(net, 'theta');
    // Slower than the deterministic rollouts (0.71 against 0.98 after 25 epochs with seed 3; τ = 0 learns as dpm2):
    // the noise τ = 0.4 injects between t = 0.9 and 0.3 spreads the samples the rewards rank.
    const history = await nft.run({ epochs: 25 });
    // The first epoch's rollouts are sample()'s with AWM's SA-Solver, from θ_old = θ and the trainer's seed.
    const fresh = baseNet();
    const cond = Tensor.fromInt32(new Int32Array(128), [128, 1]);
    const { x } = await sample(fresh, { cond, steps: 10, seed: 3, solver: 'sa-solver' });
    const rewards = toy2d.rewards.red(x);
    expect(history[0]?.reward).toBeCloseTo(rewards.reduce((s, v) => s + v, 0) / rewards.length, 12);
    expect(await meanRedReward(net, 'theta')).toBeGreaterThan(before + 0.4);
    // Other SA-Solver options, and saSolver only with that solver.
    const deterministic = await new DiffusionNFT(fresh, {
      ...OPTIONS,
      solver: 'sa-solver',
      saSolver: { tau: 0 },
    }).epoch();
    expect(deterministic.reward).not.toBe(history[0]?.reward);
    expect(() => new DiffusionNFT(fresh, { ...OPTIONS, saSolver: { tau: 0 } })).toThrow(/saSolver applies to solver/);
    expect(() => new DiffusionNFT(fresh, { ...OPTIONS, solver: 'sa-solver', saSolver: { predictorOrder: 5 } })).toThrow(
      /options\.saSolver\.predictorOrder/,
    );
    // A resume must give the same SA-Solver options.
    const path = join(dir, 'nft-sa.safetensors');
    await new DiffusionNFT(fresh, { ...OPTIONS, solver: 'sa-solver' }).run({ epochs: 1, checkpoint: { path } });
    const resumed = await DiffusionNFT.resume(path, { ...OPTIONS, solver: 'sa-solver' });
    expect(resumed.epochCount).toBe(1);
    resumed.net.dispose();
    const other = { ...OPTIONS, solver: 'sa-solver' as const, saSolver: { tauInterval: [0, 1] as const } };
    await expect(DiffusionNFT.resume(path, other)).rejects.toThrow(/other options/);
    net.dispose();
    fresh.dispose();
  });

  it("drops the learning rate to minLr after totalSteps with schedule 'drop'", async () => {
    const net = baseNet();
    const nft = new DiffusionNFT(net, { ...OPTIONS, schedule: 'drop', totalSteps: 2, minLr: 1e-5 });
    const lrs = (await nft.run({ epochs: 4 })).map((s) => s.lr);
    expect(lrs).toEqual([1e-3, 1e-3, 1e-5, 1e-5]);
    net.dispose();
  });
});
