// SIGKILL during every kind of save (docs/reliability.md, "What a crash can and cannot lose"): a process saving two
// states A and B in turn is killed at random points; what is at the path always loads, and is A or B exactly
// (checkpoints, adapter files, PEFT adapter folders), or, for a run's metrics, reads as whole records that a resume
// continues. DNFT_KILL_TRIALS sets the kills of each kind (CI: 10; the figures of docs/reliability.md: 50).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAdapter, loadCheckpoint, VelocityNet } from '../lib/index.js';
import { MetricsLog } from '../lib/metrics/log.js';
import { readRunRecords } from '../lib/metrics/records.js';
import { tempFolder } from './helpers.js';
// @ts-expect-error: a plain ES module of the test, without types
import { SAVE_KINDS, state } from './reliability/save-loop.mjs';

const TRIALS = Number(process.env.DNFT_KILL_TRIALS ?? 10);
const dir = tempFolder('kill-saves');

/** Starts the saver of `kind` on `path`, waits for its first save, lets it run `ms` more and kills it. */
function killDuringSaves(kind: string, path: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['test/reliability/save-loop.mjs', kind, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DNFT_NUM_THREADS: '1' },
    });
    let output = '';
    const onData = (d: Buffer) => {
      output += d;
      if (output.includes('ready\n') && !child.killed) setTimeout(() => child.kill('SIGKILL'), ms);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => {
      output += d;
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`the saver of ${kind} ended by itself (${code}): ${output}`));
    });
  });
}

/** The values a state's network and adapter hold, to tell A from B. */
function fingerprint(net: VelocityNet, withBase: boolean): string {
  const theta = new Float32Array(net.lora?.paramCount ?? 0);
  net.model.getAdapter(theta, 'theta');
  return JSON.stringify([net.lora?.rank, [...theta], withBase ? [...net.getParameters()] : []]);
}

describe('reliability: SIGKILL during saves', () => {
  for (const kind of SAVE_KINDS as string[]) {
    it(`${kind}: ${TRIALS} kills at random points leave the old state or the new one, never an unreadable one`, async () => {
      const states = [0, 1].map((which) => state(which) as VelocityNet);
      const withBase = kind === 'checkpoint';
      const expected = states.map((net) => fingerprint(net, withBase));
      const path = join(dir, kind === 'checkpoint' || kind === 'adapter' ? `${kind}.safetensors` : kind);
      const seen = [0, 0];
      let random = 4242;
      for (let trial = 0; trial < TRIALS; trial++) {
        random = (random * 1103515245 + 12345) % 2 ** 31;
        await killDuringSaves(kind, path, Math.floor((random / 2 ** 31) * 300));
        if (kind === 'metrics') {
          const records = await readRunRecords(path);
          expect(records.length, `trial ${trial}`).toBeGreaterThan(0);
          const last = records.at(-1)?.epoch ?? 0;
          const resumed = await MetricsLog.open({ dir: path, epoch: last, trainer: 'check' });
          expect(resumed.records.length).toBeGreaterThan(0);
          continue;
        }
        let loaded: VelocityNet;
        if (kind === 'checkpoint') loaded = (await loadCheckpoint(path)).net;
        else {
          loaded = VelocityNet.create(states[0]?.config ?? {}, { seed: 1 });
          await loadAdapter(path, loaded);
        }
        const which = expected.indexOf(fingerprint(loaded, withBase));
        expect(which, `trial ${trial}: the ${kind} is neither state`).toBeGreaterThanOrEqual(0);
        seen[which] = (seen[which] ?? 0) + 1;
        loaded.dispose();
      }
      // A save after the kills leaves nothing of theirs behind.
      const folder = kind === 'peft' || kind === 'metrics' ? path : dir;
      const leftovers = () => readdirSync(folder).filter((name) => name.includes('.tmp-') || name.startsWith('.dnft-'));
      if (kind === 'peft') {
        const { savePeftAdapter } = await import('../lib/index.js');
        await savePeftAdapter(path, states[0] as VelocityNet);
        expect(leftovers()).toEqual([]);
      }
      expect(existsSync(path)).toBe(true);
      const outcome = kind === 'metrics' ? 'every time read and resumed' : `states seen A ${seen[0]}, B ${seen[1]}`;
      console.log(`${kind}: ${TRIALS} kills, ${outcome}`);
    }, 600_000);
  }
});
