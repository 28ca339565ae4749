// The dashboard in a real browser (Debian's chromium, driven by playwright-core): a tiny live DiffusionNFT run beside
// a finished FlowGRPO one. The curves gain points as the live run writes epochs, both runs overlay, the sample grid
// shows and its slider goes back, and the page logs no error.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecords } from '../lib/metrics/records.js';
import { startCli, stopCli } from './cli-process.js';
import { cli } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dnft-browser-'));
const live = join(dir, 'live-nft');
const finished = join(dir, 'done-flowgrpo');
let dashboard: ChildProcess | undefined;
let training: ChildProcess | undefined;
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
  const tiny = ['--base', base, '--config', config];
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
  mkdirSync(live);
  const served = await startCli(['dashboard', live, finished], /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
  dashboard = served.child;
  url = served.match[1] as string;
  // Runs until the test stops it with Ctrl-C.
  training = (
    await startCli(
      ['train', '--method', 'nft', '--minutes', '30', '--eval-every', '1', ...tiny, '--out', live],
      /epoch +0 /,
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
  for (const child of [training, dashboard]) if (child) await stopCli(child);
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

    // Both runs on the same axes; DiffusionNFT's η and FlowGRPO's clip fraction each from its own run.
    for (const chart of ['strict', 'testReward', 'reward', 'loss', 'gradNorm']) {
      expect(await page.$eval(`[data-chart="${chart}"]`, (c) => (c as HTMLElement).dataset.runs), chart).toBe('2');
    }
    expect(await page.$eval('[data-chart="eta"]', (c) => (c as HTMLElement).dataset.runs)).toBe('1');
    expect(await page.$eval('[data-chart="clipFraction"]', (c) => (c as HTMLElement).dataset.runs)).toBe('1');
    expect(await page.locator('#runs tbody tr').count()).toBe(2);
    expect(await page.locator('#categories tr').count()).toBe(3);
    expect(await page.locator('[data-chart="strict"] canvas').count()).toBe(1);

    // The latest grid of the live run, its prompts beside it, and the slider back to the first evaluation.
    const image = page.locator('#samples-image');
    await page.waitForFunction(() => {
      const img = document.querySelector<HTMLImageElement>('#samples-image');
      return Boolean(img?.complete && img.naturalWidth > 0);
    });
    expect(await image.getAttribute('src')).toMatch(/^\/runs\/0\/samples\/epoch-\d{4}\.png$/);
    expect(await page.locator('#samples-prompts li').count()).toBe(8);
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

  it('the live run stops cleanly on Ctrl-C, its stream whole', async () => {
    const { status, output } = await stopCli(training as ChildProcess);
    expect(status, output).toBe(0);
    expect(output).toMatch(/interrupted: finishing the current step/);
    expect(output).not.toMatch(/dashboard:/); // only with --dashboard
    const records = parseRecords(readFileSync(join(live, 'metrics.jsonl'), 'utf8'));
    const epochs = records.filter((r) => r.kind === 'epoch').map((r) => r.epoch);
    expect(epochs).toEqual(Array.from({ length: epochs.length }, (_, i) => i + 1));
  });
});
