// The dashboard's sampling page (lib/dashboard/sampling.ts, sampler.ts) in Debian's chromium through playwright-core:
// the shipped shapes base, exported to a run folder's model.onnx, runs in onnxruntime-web under the package's own
// solvers, and the page's samples equal Node's native sampler's for the same prompt, seed, solver (SA-Solver with its
// default options and with others) and steps, with and without guidance; the console stays clean. DNFT_SCREENSHOT=<png> keeps the page's screenshot (docs/onnx.md).

import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  exportOnnx,
  loadCheckpoint,
  type SaSolverOptions,
  type SolverName,
  sample,
  Tensor,
  tasks,
} from '../lib/index.js';
import { startCli, stopCli } from './cli-process.js';
import { relativeError, tempFolder } from './helpers.js';

const dir = tempFolder('sampling-page');
const run = join(dir, 'shapes-base-run');
let dashboard: ChildProcess | undefined;
let url = '';
let browser: BrowserContext | undefined;
const { net } = await loadCheckpoint('models/shapes-base.safetensors');

beforeAll(async () => {
  mkdirSync(run);
  await exportOnnx(net, join(run, 'model.onnx'));
  const served = await startCli(['dashboard', run], /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
  dashboard = served.child;
  url = served.match[1] as string;
  browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 360 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  if (dashboard) await stopCli(dashboard);
  net.dispose();
});

// Sets the page's controls, samples, and returns the samples it drew.
async function pageSamples(page: Page, o: Record<string, string>): Promise<Float32Array> {
  for (const [id, value] of Object.entries(o)) {
    if (id === 'prompt' || id === 'solver') await page.locator(`#${id}`).selectOption(value);
    else await page.locator(`#${id}`).fill(value);
  }
  await page.evaluate(() => {
    window.dnftSamples = undefined;
  });
  await page.locator('#run').click();
  await page.waitForFunction(
    () => window.dnftSamples !== undefined || /error/.test(document.querySelector('#status')?.textContent ?? ''),
  );
  expect(await page.locator('#status').textContent()).toBe('done');
  return Float32Array.from((await page.evaluate(() => window.dnftSamples)) as number[]);
}

describe('sampling in the browser', () => {
  it("draws a run's exported model in onnxruntime-web, equal to Node's samples, console clean", async () => {
    const page = (browser as BrowserContext).pages()[0] ?? (await (browser as BrowserContext).newPage());
    page.setDefaultTimeout(120_000);
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(m.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('requestfailed', (request) => errors.push(`${request.url()}: ${request.failure()?.errorText}`));
    await page.goto(`${url}sample`);
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'ready');
    expect(await page.locator('#model option').allTextContents()).toEqual(['shapes-base-run']);

    const prompt = tasks.shapes.ALL_PROMPTS.findIndex((p) => p.text === 'a red circle');
    expect(prompt).toBeGreaterThanOrEqual(0);
    const tokens = tasks.shapes.ALL_PROMPTS[prompt]?.tokens ?? [];
    // SA-Solver first with the page's fields untouched (they must be its defaults), then with every option changed.
    const saOther = { predictorOrder: 3, correctorOrder: 1, tau: 0.7, tauInterval: [0.2, 0.8] as [number, number] };
    const cases: [SolverName, number, number, number, SaSolverOptions?][] = [
      ['heun', 4, 3, 2],
      ['euler', 5, 1, 3],
      ['dpm2', 10, 3, 8],
      ['sa-solver', 8, 3, 3, {}],
      ['sa-solver', 6, 1, 2, saOther],
    ];
    for (const [solver, steps, cfg, count, saSolver] of cases) {
      const [tauLo, tauHi] = saSolver?.tauInterval ?? [];
      const fields = { ...saSolver, tauInterval: undefined, tauLo, tauHi };
      const ours = await pageSamples(page, {
        prompt: String(prompt),
        seed: '5',
        solver,
        steps: String(steps),
        count: String(count),
        cfg: String(cfg),
        ...Object.fromEntries(Object.entries(fields).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]]))),
      });
      const cond = Tensor.fromInt32(
        Int32Array.from({ length: count * 8 }, (_, i) => tokens[i % 8] as number),
        [count, 8],
      );
      const node = await sample(net, { cond, seed: 5, solver, steps, cfgScale: cfg, saSolver });
      const error = relativeError(ours, node.x.storage);
      const what = `${solver}${saSolver ? ` ${JSON.stringify(saSolver)}` : ''}`;
      console.log(`browser vs native sampler, ${what} ${steps} steps, guidance ${cfg}: ${error.toExponential(2)}`);
      expect(error).toBeLessThan(1e-4);
    }
    expect(await page.locator('#sa-solver-options').isVisible()).toBe(true);
    await page.locator('#solver').selectOption('dpm2');
    expect(await page.locator('#sa-solver-options').isVisible()).toBe(false);
    const screenshot = join(dir, 'sampling.png');
    await page.screenshot({ path: screenshot });
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe('PNG');
    if (process.env.DNFT_SCREENSHOT) copyFileSync(screenshot, process.env.DNFT_SCREENSHOT);
    expect(errors).toEqual([]);
  }, 300_000);

  it('answers bad sampling inputs with 400 and serves only its own modules', async () => {
    const base = url;
    const bad = await fetch(`${base}sample/inputs?prompt=0&seed=1&count=0&steps=4`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/count must be an integer in \[1, 64\]/);
    const inputs = `${base}sample/inputs?prompt=0&seed=1&count=2&steps=4`;
    for (const [query, message] of [
      ['solver=sa-solver&tau=-1', /^saSolver\.tau must be/],
      ['solver=sa-solver&tauInterval=0.9,0.3', /^saSolver\.tauInterval must be \[lo, hi\]/],
      ['solver=dpm2&correctorOrder=1', /^correctorOrder applies to solver sa-solver only/],
      ['solver=unipc', /^solver must be one of euler, heun, dpm2, sa-solver, got unipc/],
    ] as const) {
      const answer = await fetch(`${inputs}&${query}`);
      expect(answer.status, query).toBe(400);
      expect(await answer.text(), query).toMatch(message);
    }
    expect((await fetch(`${base}lib/core/native.js`)).status).toBe(404);
    expect((await fetch(`${base}assets/ort/ort.node.min.js`)).status).toBe(404);
    const wasm = await fetch(`${base}assets/ort/ort-wasm-simd-threaded.wasm`);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    const page = await fetch(`${base}sample`);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self' 'wasm-unsafe-eval'/);
  });
});
