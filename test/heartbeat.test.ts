// The run folder's heartbeat (lib/metrics/heartbeat.ts): an open MetricsLog holds it and close() removes it; a reader
// on the same host trusts the pid, one on another host the beat's advance by its own clock.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HEARTBEAT_FILE, HEARTBEAT_PERIOD_MS, type Heartbeat, LivenessReader } from '../lib/metrics/heartbeat.js';
import { MetricsLog } from '../lib/metrics/log.js';
import { tempFolder } from './helpers.js';

const root = tempFolder('heartbeat');

function writeHeartbeat(dir: string, h: Heartbeat): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, HEARTBEAT_FILE), JSON.stringify(h));
}

describe('the heartbeat of a run folder', () => {
  it('is held by an open MetricsLog and removed by close()', async () => {
    const dir = join(root, 'log');
    const reader = new LivenessReader();
    const log = await MetricsLog.open({ dir, epoch: 0, trainer: 'DiffusionNFT' });
    const h = JSON.parse(readFileSync(join(dir, HEARTBEAT_FILE), 'utf8')) as Heartbeat;
    expect([h.pid, h.host, h.periodMs]).toEqual([process.pid, hostname(), HEARTBEAT_PERIOD_MS]);
    expect(await reader.alive(dir)).toBe(true);
    await log.close();
    expect(existsSync(join(dir, HEARTBEAT_FILE))).toBe(false);
    expect(await reader.alive(dir)).toBe(false);
  });

  it('on this host, is alive exactly while its pid exists', async () => {
    const dir = join(root, 'gone');
    const child = spawnSync(process.execPath, ['-e', '']); // a pid that has exited
    writeHeartbeat(dir, { pid: child.pid as number, host: hostname(), beat: 3, periodMs: HEARTBEAT_PERIOD_MS });
    expect(await new LivenessReader().alive(dir)).toBe(false);
    writeHeartbeat(dir, { pid: process.pid, host: hostname(), beat: 3, periodMs: HEARTBEAT_PERIOD_MS });
    expect(await new LivenessReader().alive(dir)).toBe(true);
  });

  it("from another host, is alive while its beat advances within 15 periods of the reader's clock", async () => {
    const dir = join(root, 'remote');
    let now = 0;
    const reader = new LivenessReader(() => now);
    const beat = (n: number) => writeHeartbeat(dir, { pid: 1, host: `not-${hostname()}`, beat: n, periodMs: 1000 });
    beat(1);
    expect(await reader.alive(dir)).toBe(true);
    now = 14_000;
    expect(await reader.alive(dir)).toBe(true);
    beat(2);
    now = 20_000;
    expect(await reader.alive(dir)).toBe(true); // advanced: counted from now
    now = 34_999;
    expect(await reader.alive(dir)).toBe(true);
    now = 35_000;
    expect(await reader.alive(dir)).toBe(false);
    beat(3);
    expect(await reader.alive(dir)).toBe(true);
  });

  it('is not alive without a file, or with one that is not a heartbeat', async () => {
    const dir = join(root, 'none');
    mkdirSync(dir, { recursive: true });
    expect(await new LivenessReader().alive(dir)).toBe(false);
    writeFileSync(join(dir, HEARTBEAT_FILE), '{"pid": "x"}');
    expect(await new LivenessReader().alive(dir)).toBe(false);
  });
});
