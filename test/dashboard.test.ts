// The dashboard's server through the CLI: it listens on 127.0.0.1 only, serves its own assets and the named run
// folders' files and nothing else, and stops cleanly on Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshot } from '../lib/dashboard/runs.js';
import { gridPath, MetricsLog } from '../lib/metrics/log.js';
import { startCli, stopCli } from './cli-process.js';

const dir = mkdtempSync(join(tmpdir(), 'dnft-dashboard-'));
const run = join(dir, 'run');
const GRID = 'docs/images/b4-samples-base.png';
let server: ChildProcess;
let port: number;

beforeAll(async () => {
  const log = await MetricsLog.open({ dir: run, epoch: 0, trainer: 'DiffusionNFT', config: { lr: 1e-4 } });
  await log.evaluation(0, { reward: 0.4, strict: 0.2 }, { png: readFileSync(GRID), prompts: ['a'] });
  writeFileSync(join(dir, 'secret.json'), '{"secret":true}\n');
  mkdirSync(join(run, 'sub'));
  writeFileSync(join(run, 'checkpoint.safetensors'), 'weights');
  const started = await startCli(['dashboard', run, '--port', '0'], /dashboard: http:\/\/127\.0\.0\.1:(\d+)\//);
  server = started.child;
  port = Number(started.match[1]);
});
afterAll(async () => {
  if (server.exitCode === null) await stopCli(server);
  rmSync(dir, { recursive: true, force: true });
});

/** A GET sent as is (no path normalisation), its status and body. */
function get(path: string, host = `127.0.0.1:${port}`, address = '127.0.0.1', method = 'GET') {
  return new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = request({ host: address, port, path, method, headers: { host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the dashboard server', () => {
  it('listens on 127.0.0.1 only', async () => {
    expect((await get('/')).status).toBe(200);
    // Another loopback address of this machine reaches a server bound to all of them, not this one.
    await expect(get('/', `127.0.0.2:${port}`, '127.0.0.2')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(get('/', `[::1]:${port}`, '::1')).rejects.toThrow();
  });

  it('serves its page, its assets from the package and the run folder files', async () => {
    const page = await get('/');
    expect(page.body.toString()).toMatch(/<script src="\/assets\/uPlot\.iife\.min\.js">/);
    const uplot = await get('/assets/uPlot.iife.min.js');
    expect(uplot.status).toBe(200);
    expect(uplot.body.equals(readFileSync('node_modules/uplot/dist/uPlot.iife.min.js'))).toBe(true);
    expect((await get('/assets/client.js')).status).toBe(200);
    const grid = await get('/runs/0/samples/epoch-0000.png');
    expect(grid.status).toBe(200);
    expect(grid.body.subarray(1, 4).toString()).toBe('PNG');
    expect((await get('/runs/0/metrics.jsonl')).body.toString()).toMatch(/^\{"kind":"start"/);
    expect((await get('/runs/7/metrics.jsonl')).status).toBe(404);
    expect((await get('/nothing')).status).toBe(404);
  });

  it('refuses paths out of its assets and run folders, other kinds of files, other hosts and methods', async () => {
    const outside = [
      '/runs/0/../secret.json',
      '/runs/0/sub/../../secret.json',
      '/runs/0/%2e%2e/secret.json',
      '/runs/0/..%2fsecret.json',
      '/runs/0/..%5csecret.json',
      `/runs/0/${encodeURIComponent(join(dir, 'secret.json'))}`,
      `/runs/0/${join(dir, 'secret.json')}`,
      '/runs/0//etc/passwd',
      '/../package.json',
      '/assets/../../package.json',
      '/assets/%2e%2e/server.js',
      `//${join(dir, 'secret.json')}`,
      `http://127.0.0.1:${port}/../package.json`,
    ];
    for (const path of outside) {
      const answer = await get(path);
      expect(answer.status, path).toBe(403);
      expect(answer.body.toString(), path).not.toMatch(/secret|"name"/);
    }
    // An absolute path is no route of its own.
    expect((await get(join(dir, 'secret.json'))).status).toBe(404);
    expect((await get('/runs/0/checkpoint.safetensors')).status).toBe(403);
    expect((await get('/', 'evil.example:80')).status).toBe(403);
    expect((await get('/', `127.0.0.1:${port}`, '127.0.0.1', 'POST')).status).toBe(405);
  });

  it('stops cleanly on Ctrl-C', async () => {
    const { status, output } = await stopCli(server);
    expect(status, output).toBe(0);
    expect(output).toMatch(/dashboard stopped/);
    await expect(get('/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('refuses a file, and waits for a folder that does not exist yet', async () => {
    const file = join(dir, 'file.txt');
    writeFileSync(file, 'not a folder');
    const refused = spawn(process.execPath, ['dist/lib/cli.js', 'dashboard', file]);
    let err = '';
    refused.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const status = await new Promise((resolve) => refused.on('close', resolve));
    expect(status).not.toBe(0);
    expect(err).toMatch(/file\.txt is not a folder/);
    const later = join(dir, 'later');
    const { child } = await startCli(['dashboard', later], /waiting for .*later: it does not exist yet/);
    expect((await stopCli(child)).status).toBe(0);
  });
});

describe("the dashboard's run snapshots", () => {
  it('leave out the sample grids whose image is missing (a results folder keeps records only)', async () => {
    const folder = join(dir, 'records-only');
    const log = await MetricsLog.open({ dir: folder, epoch: 0, trainer: 'DiffusionNFT', config: {} });
    await log.evaluation(0, { reward: 0.4 }, { png: readFileSync(GRID), prompts: ['a'] });
    await log.evaluation(1, { reward: 0.5 }, { png: readFileSync(GRID), prompts: ['a'] });
    const grids = async () =>
      (await snapshot(0, 'run', folder)).records.flatMap((r) => (r.kind === 'evaluation' ? [r.grid?.image] : []));
    expect(await grids()).toEqual([gridPath(0), gridPath(1)]);
    rmSync(join(folder, gridPath(0)));
    expect(await grids()).toEqual([undefined, gridPath(1)]);
  });
});
