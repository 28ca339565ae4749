// The surfaces hardened after the checkpoint loader (issue 37, docs/reliability.md): adapters and PEFT folders,
// image folders, metrics on resume, the guarded reader, header bounds, sizes checked before allocating, sdeLogProb.
// Each test fails without its fix. Loads that could hang run in child processes (a hang fails the test, not the
// runner).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { COMMIT_FILE, temporaryPath } from '../lib/core/files.js';
import { type FileReadError, readGuarded } from '../lib/core/read-file.js';
import { decodeSafetensors, encodeSafetensors, MAX_TENSORS } from '../lib/core/safetensors.js';
import {
  CheckpointError,
  DatasetError,
  FlowMatchingTrainer,
  imageFolderDataset,
  loadAdapter,
  loadCheckpoint,
  loadStateDict,
  NumericError,
  StateDictError,
  saveAdapter,
  saveCheckpoint,
  savePeftAdapter,
  sdeLogProb,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import { MetricsLog } from '../lib/metrics/log.js';
import { readRunRecords } from '../lib/metrics/records.js';
import { cli, TINY_MLP, tempFolder } from './helpers.js';

const dir = tempFolder('rel-surfaces');
const LORA = { lr: 1e-2, seed: 3, lora: { rank: 2, alpha: 4, seed: 5 } };

/** A network with trained adapters (moments and step 1). */
async function adapted(seed = 1): Promise<VelocityNet> {
  const net = VelocityNet.create(TINY_MLP, { seed });
  const trainer = new FlowMatchingTrainer(net, LORA);
  const cond = Tensor.fromInt32(new Int32Array(8 * TINY_MLP.condSlots), [8, TINY_MLP.condSlots]);
  await trainer.step({ x0: Tensor.randn([8, 2], { seed }), cond });
  return net;
}

/** Everything loadAdapter may change: adapter values, moments, step. */
function adapterState(net: VelocityNet) {
  const count = net.lora?.paramCount ?? 0;
  const theta = new Float32Array(count);
  net.model.getAdapter(theta, 'theta');
  const m = new Float32Array(count);
  const v = new Float32Array(count);
  if (net.model.hasOptimizerState()) net.model.getOptimizerState(m, v);
  return { lora: JSON.stringify(net.lora), theta, m, v, step: net.step, moments: net.model.hasOptimizerState() };
}

/** Runs `body` (ES module source using `lib`, the built package) in a child node; a hang past 60 s fails. */
function inChild(body: string): { status: number | null; out: string; ms: number } {
  const script = `import * as lib from './dist/lib/index.js';\n${body}`;
  const started = performance.now();
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, out: `${run.stdout}${run.stderr}`, ms: performance.now() - started };
}

/** A FIFO at `path` (mkfifo). */
function fifo(path: string): string {
  execFileSync('mkfifo', [path]);
  return path;
}

/** A PNG's bytes with its IDAT replaced by `idat` (CRC recomputed). */
function withIdat(png: Buffer, idat: Buffer): Buffer {
  const at = png.indexOf('IDAT') - 4;
  const length = png.readUInt32BE(at);
  const chunk = Buffer.alloc(12 + idat.length);
  chunk.writeUInt32BE(idat.length, 0);
  chunk.write('IDAT', 4, 'latin1');
  idat.copy(chunk, 8);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + idat.length)), 8 + idat.length);
  return Buffer.concat([png.subarray(0, at), chunk, png.subarray(at + 12 + length)]);
}

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A 4×4 RGB PNG. */
function smallPng(): Buffer {
  const png = new PNG({ width: 4, height: 4 });
  png.data.fill(255);
  return PNG.sync.write(png);
}

const IMAGE_NET = { width: 16, depth: 1, dataDim: 4 * 4 * 3, vocabSize: 4 } as const;
const imageConfig = () => VelocityNet.create(IMAGE_NET).config;

/** An image folder with one class holding `files` (name → bytes). */
function imageFolder(name: string, files: Record<string, Buffer>): string {
  const root = join(dir, name);
  mkdirSync(join(root, 'a'), { recursive: true });
  for (const [file, bytes] of Object.entries(files)) writeFileSync(join(root, 'a', file), bytes);
  return root;
}

describe('loadAdapter is all-or-nothing', () => {
  it('refuses dnft.step above 2^40 and steps that are not decimal digits, changing nothing', async () => {
    const source = await adapted(1);
    const file = join(dir, 'adapter.safetensors');
    await saveAdapter(file, source);
    const target = await adapted(2);
    const before = adapterState(target);
    for (const step of [String(2 ** 40 + 1), '0x10', '1e3', ' 12', '']) {
      const { tensors, metadata } = decodeSafetensors(readFileSync(file));
      const bad = join(dir, 'adapter-step.safetensors');
      writeFileSync(bad, encodeSafetensors(tensors, { ...metadata, 'dnft.step': step }));
      const error = await loadAdapter(bad, target).catch((e: unknown) => e);
      expect(error, step).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).toMatch(/invalid dnft\.step/);
      expect(adapterState(target)).toEqual(before);
    }
  });
});

describe('PEFT folders', () => {
  it('matches target_modules on a linear-time engine: a catastrophic pattern ends at once', () => {
    const run = inChild(`
      const net = lib.VelocityNet.create(${JSON.stringify(TINY_MLP)}, { seed: 1, lora: { rank: 2 } });
      await lib.savePeftAdapter(${JSON.stringify(join(dir, 'peft-redos'))}, net);
      const path = ${JSON.stringify(join(dir, 'peft-redos', 'adapter_config.json'))};
      const fs = await import('node:fs');
      const config = JSON.parse(fs.readFileSync(path, 'utf8'));
      fs.writeFileSync(path, JSON.stringify({ ...config, target_modules: '(.*.*.*.*.*.*)*X' }));
      const error = await lib.loadAdapter(${JSON.stringify(join(dir, 'peft-redos'))}, net).catch((e) => e);
      console.log(error.name, error.message);
    `);
    expect(run.status, run.out).toBe(0);
    expect(run.out).toMatch(/CheckpointError .*matches no block module/);
  });

  it('keeps PEFT semantics: a string is a whole-name regular expression, with RE2 syntax errors named', async () => {
    const net = VelocityNet.create(TINY_MLP, { seed: 1, lora: { rank: 2, targets: ['fc1'] } });
    const folder = join(dir, 'peft-regex');
    await savePeftAdapter(folder, net);
    const config = JSON.parse(readFileSync(join(folder, 'adapter_config.json'), 'utf8'));
    const load = (targets: unknown) => {
      writeFileSync(join(folder, 'adapter_config.json'), JSON.stringify({ ...config, target_modules: targets }));
      return loadAdapter(folder, net);
    };
    await expect(load('.*\\.fc1')).resolves.toBeUndefined();
    await expect(load('fc1')).rejects.toThrow(/matches no block module/); // a whole-name match, not a search
    await expect(load('(fc1)\\1')).rejects.toThrow(CheckpointError);
    await expect(load('x'.repeat(20_000))).rejects.toThrow(/over the limit/);
    await expect(load(['fc1'])).resolves.toBeUndefined();
    await expect(load(Array.from({ length: 20_000 }, () => 'fc1'))).rejects.toThrow(
      /lists 20000 names, over the limit/,
    );
  });

  it('savePeftAdapter commits both files as one: a save killed after its commit point loads the new adapter', async () => {
    const folder = join(dir, 'peft-commit');
    const old = VelocityNet.create(TINY_MLP, { seed: 1, lora: { rank: 2 } });
    await savePeftAdapter(folder, old);
    // The state a save killed between its commit and its renames leaves: new files under temporary names, a commit.
    const fresh = VelocityNet.create(TINY_MLP, { seed: 1, lora: { rank: 4 } });
    const staging = join(dir, 'peft-staging');
    await savePeftAdapter(staging, fresh);
    const commit: Record<string, string> = {};
    for (const name of ['adapter_model.safetensors', 'adapter_config.json']) {
      const temporary = temporaryPath(join(folder, name));
      writeFileSync(temporary, readFileSync(join(staging, name)));
      commit[name] = temporary.slice(folder.length + 1);
    }
    writeFileSync(join(folder, COMMIT_FILE), JSON.stringify(commit));
    const reader = VelocityNet.create(TINY_MLP, { seed: 1 });
    await loadAdapter(folder, reader);
    expect(reader.lora?.rank).toBe(4);
    // The next save finishes that commit first, then writes its own; no temporary or commit is left.
    await savePeftAdapter(folder, old);
    expect(readdirSync(folder).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    await loadAdapter(folder, reader);
    expect(reader.lora?.rank).toBe(2);
    // A commit file that is not ours is refused by the reader, not followed.
    writeFileSync(join(folder, COMMIT_FILE), JSON.stringify({ 'adapter_config.json': '../../etc/passwd' }));
    await expect(loadAdapter(folder, reader)).rejects.toThrow(CheckpointError);
  });

  it('reads a FIFO as adapter_config.json without waiting for a writer', () => {
    const folder = join(dir, 'peft-fifo');
    const run = inChild(`
      const net = lib.VelocityNet.create(${JSON.stringify(TINY_MLP)}, { seed: 1, lora: { rank: 2 } });
      await lib.savePeftAdapter(${JSON.stringify(folder)}, net);
      const fs = await import('node:fs');
      const { execFileSync } = await import('node:child_process');
      fs.rmSync(${JSON.stringify(join(folder, 'adapter_config.json'))});
      execFileSync('mkfifo', [${JSON.stringify(join(folder, 'adapter_config.json'))}]);
      const error = await lib.loadAdapter(${JSON.stringify(folder)}, net).catch((e) => e);
      console.log(error.name, error.message);
    `);
    expect(run.status, run.out).toBe(0);
    expect(run.out).toMatch(/CheckpointError .*not a regular file/);
  });
});

describe('the guarded reader', () => {
  it('reads regular files only, within the limit of their kind', async () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, '{}');
    expect((await readGuarded(path, 'config')).toString()).toBe('{}');
    const reason = (p: string, kind: 'config' | 'image' = 'config') =>
      readGuarded(p, kind).then(
        () => 'read',
        (e: FileReadError) => e.reason,
      );
    expect(await reason(join(dir, 'missing.json'))).toBe('missing');
    expect(await reason(dir)).toBe('not-regular');
    expect(await reason('/dev/zero')).toBe('not-regular');
    expect(await reason(fifo(join(dir, 'reader.fifo')))).toBe('not-regular');
    const big = join(dir, 'big.json');
    writeFileSync(big, Buffer.alloc(5 * 2 ** 20, 0x20));
    expect(await reason(big)).toBe('too-large');
    expect(await reason(big, 'image')).toBe('read');
  });

  it('serves --config: a FIFO or /dev/zero is refused at once', () => {
    const link = join(dir, 'zero.json');
    symlinkSync('/dev/zero', link);
    for (const config of [fifo(join(dir, 'config.fifo')), link]) {
      const run = cli('pretrain', '--config', config, '--steps', '1', '--out', join(dir, 'never.safetensors'));
      expect(run.status).not.toBe(0);
      expect(run.err).toMatch(/cannot read config .*not a regular file/);
    }
  });
});

describe('image folders', () => {
  it('refuses corrupt image data that pngjs would read as black pixels', async () => {
    const png = smallPng();
    const raw = Buffer.alloc(4 * (1 + 4 * 4), 0); // the 4×4 RGBA rows, filter bytes included
    const cases = {
      'short.png': withIdat(png, deflateSync(raw.subarray(0, 10))),
      'corrupt.png': withIdat(png, Buffer.from(deflateSync(raw).map((b, i) => (i > 2 ? b ^ 0x55 : b)))),
      'long.png': withIdat(png, deflateSync(Buffer.concat([raw, Buffer.alloc(7)]))),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      const folder = imageFolder(`corrupt-${name}`, { [name]: bytes });
      const error = await imageFolderDataset(folder, imageConfig()).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(DatasetError);
      expect((error as Error).message, name).toMatch(/corrupt image data/);
    }
    const good = imageFolder('good', { 'x.png': png });
    expect((await imageFolderDataset(good, imageConfig())).length).toBe(1);
  });

  it('refuses a PNG declaring a huge image before decoding it, and FIFOs', async () => {
    const png = smallPng();
    const huge = Buffer.from(png);
    huge.writeUInt32BE(60_000, 16);
    huge.writeUInt32BE(60_000, 20);
    huge.writeUInt32BE(crc32(huge.subarray(12, 29)), 29);
    const folder = imageFolder('huge', { 'huge.png': huge });
    const before = process.memoryUsage().rss;
    const error = await imageFolderDataset(folder, imageConfig()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(/declares 60000×60000 pixels, more than the limit/);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 2 ** 20);
    const withFifo = imageFolder('fifo', {});
    fifo(join(withFifo, 'a', 'x.png'));
    const fifoError = await imageFolderDataset(withFifo, imageConfig()).catch((e: unknown) => e);
    expect(fifoError).toBeInstanceOf(DatasetError);
    expect((fifoError as Error).message).toMatch(/not a regular file/);
  });
});

describe('headers of many tensors', () => {
  /** A safetensors file of `count` empty tensors (a large header and no data). */
  function emptyTensors(name: string, count: number, metadata: Record<string, string> = {}): string {
    const header: string[] = [`"__metadata__":${JSON.stringify(metadata)}`];
    for (let i = 0; i < count; i++) header.push(`"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    const json = Buffer.from(`{${header.join(',')}}`);
    const out = Buffer.alloc(8 + json.length);
    out.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(out, 8);
    const path = join(dir, name);
    writeFileSync(path, out);
    return path;
  }

  it('refuses more than MAX_TENSORS tensors quickly, with a short message, in every loader', async () => {
    const path = emptyTensors('many.safetensors', MAX_TENSORS + 1, { 'dnft.format': 'diffusion-nft/1' });
    const net = await adapted(1);
    const loads = [
      () => loadCheckpoint(path),
      () => loadStateDict(path, TINY_MLP),
      () => loadAdapter(path, net),
      () => loadAdapter(path, net, { alpha: 2 }),
    ];
    for (const load of loads) {
      const started = performance.now();
      const error = await load().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).toMatch(/more than 100000 tensors/);
      expect((error as Error).message.length).toBeLessThan(1000);
      expect(performance.now() - started).toBeLessThan(5000);
    }
  });

  it('lists at most 50 problems in a StateDictError message, and every one in .problems', async () => {
    const path = emptyTensors('unexpected.safetensors', 2000);
    const error = (await loadStateDict(path, TINY_MLP).catch((e: unknown) => e)) as StateDictError;
    expect(error).toBeInstanceOf(StateDictError);
    expect(error.problems.length).toBeGreaterThan(2000);
    expect(error.message.split('\n').length).toBe(52);
    expect(error.message).toMatch(/… and \d+ more/);
  });

  it('quotes at most 200 characters of a name or value from the file', async () => {
    const net = VelocityNet.create(TINY_MLP, { seed: 1 });
    const path = join(dir, 'long-name.safetensors');
    await saveCheckpoint(path, net);
    const { tensors, metadata } = decodeSafetensors(readFileSync(path));
    const long = 'x'.repeat(1_000_000);
    writeFileSync(path, encodeSafetensors(tensors, { ...metadata, 'dnft.step': long }));
    const error = await loadCheckpoint(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckpointError);
    expect((error as Error).message.length).toBeLessThan(1000);
  });
});

describe('metrics on resume', () => {
  it('keeps the readable records, sets the bad lines aside and says so', async () => {
    const run = join(dir, 'metrics-run');
    mkdirSync(run);
    const record = (epoch: number, elapsed: unknown) =>
      JSON.stringify({ kind: 'epoch', version: 1, epoch, elapsed, reward: 0.5 });
    const lines = [record(1, 1), '{"kind":"epoch",', record(2, '7'), record(3, 3), record(4, 4)];
    writeFileSync(join(run, 'metrics.jsonl'), `${lines.join('\n')}\n`);
    await expect(readRunRecords(run)).rejects.toThrow(/line 2/);
    const said: string[] = [];
    const log = await MetricsLog.open({
      dir: run,
      epoch: 3,
      trainer: 'T',
      onUnreadable: (error) => said.push(error.message),
    });
    expect(log.records.map((r) => r.epoch)).toEqual([1, 3, 3]); // the kept ones up to epoch 3, then the start
    expect(log.elapsed).toBe(3);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/2 lines that are not records left out \(line 2: .*\), set aside in .*rejected/);
    const aside = readdirSync(run).filter((name) => name.startsWith('metrics.jsonl.rejected-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(run, aside[0] as string), 'utf8')).toBe(`${lines[1]}\n${lines[2]}\n`);
  });

  it('refuses a metrics.jsonl that is not a regular file', async () => {
    const run = join(dir, 'metrics-zero');
    mkdirSync(run);
    symlinkSync('/dev/zero', join(run, 'metrics.jsonl'));
    await expect(readRunRecords(run)).rejects.toThrow(/not a regular file/);
  });
});

describe('sizes checked before allocating', () => {
  it('refuses evaluations, grids and batches that cannot fit, before sampling', () => {
    const base = 'models/shapes-base.safetensors';
    const runs = [
      cli('eval', '--checkpoint', base, '--samples-per-prompt', '65536'),
      cli('sample', '--checkpoint', base, '--prompt', 'two triangles', '--n', '65536', '--out', join(dir, 'n.png')),
    ];
    for (const run of runs) {
      expect(run.status).not.toBe(0);
      expect(run.err).toMatch(/above the limit/);
    }
    expect(existsSync(join(dir, 'n.png'))).toBe(false);
    const batch = cli('pretrain', '--batch', '1048576', '--steps', '1', '--out', join(dir, 'batch.safetensors'));
    expect(batch.status).not.toBe(0);
    expect(batch.err).toMatch(/a pre-training batch: 1048576 samples need \d+ bytes, above the limit/);
  });

  it('sdeLogProb refuses a std whose square underflows and a log-probability that overflows', () => {
    const x = Tensor.from(new Float32Array([1, 2]), [1, 2]);
    const mean = Tensor.from(new Float32Array([0, 0]), [1, 2]);
    expect(() => sdeLogProb(x, mean, 1e-30)).toThrow(RangeError);
    expect(() => sdeLogProb(Tensor.from(new Float32Array([3e38, 0]), [1, 2]), mean, 2 ** -60)).toThrow(NumericError);
    expect(Number.isFinite(sdeLogProb(x, mean, 0.5)[0])).toBe(true);
  });
});
