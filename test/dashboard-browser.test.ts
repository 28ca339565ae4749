// The dashboard in a real browser (Debian's chromium, driven by playwright-core): a tiny live DiffusionNFT run beside
// a finished FlowGRPO one and a finished run of a task without a strict score. The dashboard starts before the live
// run's folder exists; the curves gain points as the live run writes epochs, the runs overlay, each run shows its
// phase, its progress toward its target and the time left, the base's scores are reference lines with error bands,
// the sample grid shows and its slider goes back, the badge ends with the runs, and the page logs no error. A run whose
// process is killed with kill -9 (no last record, its heartbeat file left behind) turns from live to stopped within
// seconds.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetricsLog } from '../lib/metrics/log.js';
import { parseRecords } from '../lib/metrics/records.js';
import { startCli, stopCli } from './cli-process.js';
import { cli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dnft-browser-'));
const live = join(dir, 'live-nft');
const finished = join(dir, 'done-flowgrpo');
const other = join(dir, 'other-task');
const killed = join(dir, 'killed-nft');
// How soon a killed run must show as stopped: the server polls every 500 ms and sees the pid gone at once.
const STOPPED_WITHIN_MS = 10_000;
let dashboard: ChildProcess | undefined;
let training: ChildProcess | undefined;
let killedDashboard: ChildProcess | undefined;
let tiny: string[];
let browser: BrowserContext | undefined;
let url: string;

// A CLI command that must succeed.
function succeeds(...args: string[]) {
  const run = cli(...args);
  expect(run.status, run.err).toBe(0);
  return run;
}

beforeAll(async () => {
  const base = join(dir, 'base.safetensors');
  succeeds('pretrain', '--preset', 'M', '--steps', '3', '--batch', '8', '--out', base);
  const config = join(dir, 'tiny.json');
  writeFileSync(config, JSON.stringify({ trainer: { groups: 2, groupSize: 2 } }));
  tiny = ['--base', base, '--config', config];
  // train --dashboard prints the URL (on stderr, beside the log) and closes the server with the run.
  const done = succeeds(
    'train',
    '--method',
    'flowgrpo',
    '--epochs',
    '2',
    '--eval-every',
    '2',
    ...tiny,
    '--out',
    finished,
    '--dashboard',
  );
  expect(done.err).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\/$/m);
  // A finished run of a task with two rewards and no strict score, written through the library.
  const log = await MetricsLog.open({ dir: other, epoch: 0, trainer: 'DiffusionNFT', config: {} });
  await log.evaluation(0, { reward: 0.2 });
  for (const epoch of [1, 2]) {
    const seconds = { sample: 1, reward: 0, train: 1, total: 2 };
    await log.epoch({ epoch, samples: 4, reward: 0.3, rewards: { red: 0.2, near: 0.4 }, seconds });
  }
  await log.evaluation(2, { reward: 0.35 });
  await log.progress(2, { phase: 'finished', target: { unit: 'epochs', done: 2, total: 2 } });
  await log.close();
  // The live run's folder does not exist yet: the dashboard waits for it.
  const served = await startCli(
    ['dashboard', live, finished, other],
    /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)[\s\S]*waiting for .*live-nft/,
  );
  dashboard = served.child;
  url = served.match[1] as string;
  // Runs until the test stops it with Ctrl-C.
  training = (
    await startCli(
      ['train', '--method', 'nft', '--minutes', '30', '--eval-every', '1', ...tiny, '--out', live],
      /^epoch +0 /m,
    )
  ).child;
  browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  for (const child of [training, dashboard, killedDashboard]) if (child) await stopCli(child);
  rmSync(dir, { recursive: true, force: true });
});

const points = (page: Page, chart: string) =>
  page.$eval(`[data-chart="${chart}"]`, (card) => Number((card as HTMLElement).dataset.points ?? 0));

describe('the dashboard in chromium', () => {
  it('follows a live run, overlays a second one, shows sample grids and logs no error', async () => {
    const page = (browser as BrowserContext).pages()[0] ?? (await (browser as BrowserContext).newPage());
    page.setDefaultTimeout(90_000); // a busy CI machine trains slowly
    const errors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' || message.type() === 'warning') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('requestfailed', (request) => errors.push(`${request.url()}: ${request.failure()?.errorText}`));
    await page.goto(url);
    await page.waitForSelector('#status.live');

    // The live run's loss curve gains points as epochs are appended (the finished run has 2).
    await page.waitForFunction(
      () => Number(document.querySelector<HTMLElement>('[data-chart="loss"]')?.dataset.points) > 2,
    );
    const before = await points(page, 'loss');
    await page.waitForFunction(
      (n) => Number(document.querySelector<HTMLElement>('[data-chart="loss"]')?.dataset.points) > n,
      before,
    );
    expect(await points(page, 'loss')).toBeGreaterThan(before);

    // The runs on the same axes; DiffusionNFT's η and FlowGRPO's clip fraction each from its own run.
    for (const chart of ['strict', 'loss', 'gradNorm']) {
      expect(await page.$eval(`[data-chart="${chart}"]`, (c) => (c as HTMLElement).dataset.runs), chart).toBe('2');
    }
    for (const chart of ['testReward', 'reward']) {
      expect(await page.$eval(`[data-chart="${chart}"]`, (c) => (c as HTMLElement).dataset.runs), chart).toBe('3');
    }
    expect(await page.$eval('[data-chart="eta"]', (c) => (c as HTMLElement).dataset.runs)).toBe('1');
    expect(await page.$eval('[data-chart="clipFraction"]', (c) => (c as HTMLElement).dataset.runs)).toBe('1');
    expect(await page.locator('#runs tbody tr').count()).toBe(3);
    expect(await page.locator('#categories tr').count()).toBe(3);
    expect(await page.locator('[data-chart="strict"] canvas').count()).toBe(1);

    // Each reward's mean: one curve per run and reward (shapes for the two shapes runs, red and near for the other).
    const rewards = await page.$eval('[data-chart="rewards"]', (c) => ({ ...(c as HTMLElement).dataset }));
    expect([rewards.runs, rewards.series]).toEqual(['3', '4']);
    // DiffusionNFT's r histogram of the latest epoch: 10 bars for the live run (the other one recorded none).
    expect(await page.$eval('#histogram-card', (c) => (c as HTMLElement).dataset.runs)).toBe('1');
    expect(await page.locator('#histograms figure[data-run="0"] rect').count()).toBe(10);

    // Scores and rewards on a y axis of at least [0, 1], and each shapes run's base as a reference line with its band.
    for (const chart of ['strict', 'testReward', 'reward']) {
      const range = await page.$eval(`[data-chart="${chart}"]`, (c) => (c as HTMLElement).dataset.yRange);
      const [lo, hi] = (range as string).split(',').map(Number);
      expect(lo, chart).toBeLessThanOrEqual(0);
      expect(hi, chart).toBeGreaterThanOrEqual(1);
    }
    expect(await page.$eval('[data-chart="strict"]', (c) => (c as HTMLElement).dataset.references)).toBe('2');
    const lines = await page.locator('[data-chart="strict"] .references li').allTextContents();
    expect(lines).toEqual([
      expect.stringMatching(/^live-nft: base, no CFG 0\.\d{3} ± 0\.\d{3}$/),
      expect.stringMatching(/^done-flowgrpo: base, no CFG 0\.\d{3} ± 0\.\d{3}$/),
    ]);

    // Each run's phase, progress toward its target and time left, from the progress records its job wrote; no
    // -Infinity where a run has no strict score.
    const row = (id: number) => page.locator(`#runs tbody tr[data-run="${id}"]`);
    expect(['sampling', 'training', 'evaluating']).toContain(await row(0).getAttribute('data-phase'));
    expect(await row(0).locator('.toward').textContent()).toMatch(/^\d+% \(.* of 30m training\)$/);
    expect(await row(0).locator('.left').textContent()).toMatch(/^(≈ \d.*|\?)$/);
    expect(await row(1).getAttribute('data-phase')).toBe('finished');
    expect(await row(1).locator('.toward').textContent()).toBe('100% (2 of 2 epochs)');
    expect(await page.locator('#runs').textContent()).not.toMatch(/Infinity|NaN/);
    expect(await row(2).locator('td').nth(8).textContent()).toBe('– / –');
    await expect.poll(() => page.locator('#status').textContent()).toBe('live');

    // The latest grid of the live run, its prompts drawn in it (not printed again), and the slider back to the first.
    const image = page.locator('#samples-image');
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('#samples-image');
      return Boolean(img?.complete && img.naturalWidth > 0);
    });
    expect(await image.getAttribute('src')).toMatch(/^\/runs\/0\/samples\/epoch-\d{4}\.png$/);
    expect(await image.getAttribute('alt')).toMatch(/a row for each prompt: a circle; .*; four triangles$/);
    expect(await page.locator('#samples-card').textContent()).not.toContain('four triangles');
    await page.locator('#samples-slider').fill('0');
    await page.waitForFunction(() =>
      document.querySelector('#samples-image')?.getAttribute('src')?.endsWith('epoch-0000.png'),
    );
    await page.waitForFunction(() => (document.querySelector('#samples-image') as HTMLImageElement).complete);
    expect(await page.locator('#samples-label').textContent()).toMatch(/^epoch 0,/);

    // Against training time, and the config of each run.
    await page.locator('input[value="elapsed"]').check();
    expect(await points(page, 'strict')).toBeGreaterThan(2);
    expect(await page.locator('#config').textContent()).toMatch(/"method": "nft"/);
    await page.locator('#config-run').selectOption({ label: 'done-flowgrpo' });
    expect(await page.locator('#config').textContent()).toMatch(/"method": "flowgrpo"/);
    expect(errors).toEqual([]);
  }, 180_000);

  it('the live run stops cleanly on Ctrl-C, its stream whole, and the badge ends with it', async () => {
    const { status, output } = await stopCli(training as ChildProcess);
    expect(status, output).toBe(0);
    const page = (browser as BrowserContext).pages()[0] as Page;
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'finished');
    expect(await page.locator('#status').getAttribute('class')).toBe('status');
    expect(await page.locator('#runs tbody tr[data-run="0"]').getAttribute('data-phase')).toBe('finished');
    expect(output).toMatch(/interrupted: finishing the current step/);
    expect(output).not.toMatch(/dashboard:/); // only with --dashboard
    const records = parseRecords(readFileSync(join(live, 'metrics.jsonl'), 'utf8'));
    const epochs = records.filter((r) => r.kind === 'epoch').map((r) => r.epoch);
    expect(epochs).toEqual(Array.from({ length: epochs.length }, (_, i) => i + 1));
  });

  it('a run whose process is killed goes from live to stopped within seconds', async () => {
    const served = await startCli(['dashboard', killed], /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
    killedDashboard = served.child;
    const run = (
      await startCli(
        ['train', '--method', 'nft', '--minutes', '30', '--eval-every', '100', ...tiny, '--out', killed],
        /^epoch +0 /m,
      )
    ).child;
    const page = await (browser as BrowserContext).newPage();
    await page.goto(served.match[1] as string);
    await page.waitForSelector('#status.live');
    const row = page.locator('#runs tbody tr[data-run="0"]');
    expect(['sampling', 'training', 'evaluating']).toContain(await row.getAttribute('data-phase'));
    const exited = new Promise((resolve) => run.once('close', resolve));
    run.kill('SIGKILL');
    await exited;
    const since = performance.now();
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'stopped', undefined, {
      timeout: STOPPED_WITHIN_MS,
    });
    expect(performance.now() - since).toBeLessThan(STOPPED_WITHIN_MS);
    expect(await page.locator('#status').getAttribute('class')).toBe('status');
    expect(await row.getAttribute('data-phase')).toBe('stopped');
    expect(await row.locator('.left').textContent()).toBe('–');
    // kill -9 ran no exit handler: the heartbeat file stayed, and its pid, gone, told the server.
    expect(existsSync(join(killed, 'heartbeat.json'))).toBe(true);
    const records = parseRecords(readFileSync(join(killed, 'metrics.jsonl'), 'utf8'));
    expect(records.filter((r) => r.kind === 'progress').at(-1)?.phase).not.toBe('finished');
    await page.close();
  }, 300_000);
});
