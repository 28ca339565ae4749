// Crash consistency (docs/reliability.md, "What a crash can and cannot lose"): a training run that saves a checkpoint every epoch is killed with SIGKILL at random
// points; the file at the path always loads, the run resumes from it bit for bit, and the next save leaves no
// temporary file. A save that fails for want of space (ulimit -f) or permission is a CheckpointError and the
// previous checkpoint stays as it was.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempFolder } from './helpers.js';
// @ts-expect-error: a plain ES module of the test, without types
import { trainer } from './reliability/crash-run.mjs';

const TRIALS = Number(process.env.DNFT_CRASH_TRIALS ?? 20);
const SCRIPT = 'test/reliability/crash-run.mjs';
const dir = tempFolder('crash');

type Trainer = {
  epoch(): Promise<unknown>;
  epochCount: number;
  net: { getParameters(): Float32Array; dispose(): void };
};

/** The parameters after each epoch of an uninterrupted run, computed as far as asked. */
const reference: Float32Array[] = [];
let uninterrupted: Trainer | undefined;
async function referenceAt(epoch: number): Promise<Float32Array> {
  uninterrupted ??= (await trainer(undefined)) as Trainer;
  while (reference.length < epoch) {
    await uninterrupted.epoch();
    reference.push(uninterrupted.net.getParameters());
  }
  return reference[epoch - 1] as Float32Array;
}

function killAfter(path: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, 'train', path], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DNFT_NUM_THREADS: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`the run ended by itself (${code}): ${stderr}`));
    });
  });
}

describe('reliability: crash consistency', () => {
  it(`SIGKILL at ${TRIALS} random points of a checkpointed run: the checkpoint loads and resumes bit for bit`, async () => {
    const path = join(dir, 'run.safetensors');
    let seed = 12345;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const leftovers: number[] = [];
    for (let trial = 0; trial < TRIALS; trial++) {
      // Start-up takes ~0.3 s; kill anywhere in the next second (often during a save).
      await killAfter(path, 250 + Math.floor(random() * 1000));
      if (!existsSync(path)) continue;
      leftovers.push(readdirSync(dir).filter((name) => name.includes('.tmp-')).length);
      const resumed = (await trainer(path)) as Trainer;
      const from = resumed.epochCount;
      expect(resumed.net.getParameters()).toEqual(await referenceAt(from));
      await resumed.epoch();
      expect(resumed.net.getParameters(), `trial ${trial}, epoch ${from + 1}`).toEqual(await referenceAt(from + 1));
      resumed.net.dispose();
    }
    // The next save removes what killed saves left behind.
    const last = (await trainer(path)) as Trainer & { save(path: string): Promise<void> };
    await last.save(path);
    expect(readdirSync(dir).filter((name) => name.includes('.tmp-'))).toEqual([]);
    expect(reference.length).toBeGreaterThan(1);
    console.log(
      `crash trials: ${TRIALS}, checkpoints up to epoch ${reference.length}, temp files seen: ${leftovers.join(',')}`,
    );
  }, 300_000);

  it('a full disk (ulimit -f) or a read-only folder during a save: CheckpointError, previous file intact', () => {
    const path = join(dir, 'limited.safetensors');
    writeFileSync(path, 'the previous checkpoint');
    const limited = spawnSync('bash', ['-c', `ulimit -f 64 && exec "${process.execPath}" ${SCRIPT} save "${path}"`], {
      encoding: 'utf8',
    });
    expect(limited.stdout).toMatch(/^CheckpointError: .*EFBIG/);
    expect(readFileSync(path, 'utf8')).toBe('the previous checkpoint');
    expect(readdirSync(dir).filter((name) => name.startsWith('limited.safetensors.tmp-'))).toEqual([]);
    if (process.getuid?.() === 0) return; // root writes into read-only folders
    const folder = join(dir, 'read-only');
    mkdirSync(folder);
    const inside = join(folder, 'ckpt.safetensors');
    writeFileSync(inside, 'kept');
    chmodSync(folder, 0o500);
    const denied = spawnSync(process.execPath, [SCRIPT, 'save', inside], { encoding: 'utf8' });
    chmodSync(folder, 0o700);
    expect(denied.stdout).toMatch(/^CheckpointError: .*EACCES/);
    expect(readFileSync(inside, 'utf8')).toBe('kept');
  });
});
