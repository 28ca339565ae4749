// Failures of the GPU (docs/gpu.md, "The vitest suites on the simulated GPU"): out of memory at the simulated
// capacity (CUDASIM_MEM) and CUDA calls that fail on purpose (CUDASIM_FAIL=api:n, the n-th call of the process). Each
// case runs test/device/faults.mjs in a process of its own, since the simulator reads its settings at start-up. A
// failure must be a BackendError naming the problem, leave the model as it was (parameters, AdamW moments and step
// count, bit for bit) and able to train on when the error is not sticky, and keep the process alive. Runs with DNFT_TEST_DEVICE=cuda (the SIM
// addon, DNFT_ADDON); the injected calls' positions are of the toy2d model of faults.mjs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DEVICE } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'dnft-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  steps: number;
  failed?: { name: string; code: string; message: string; during: string };
  kept?: boolean;
  trainsOn?: boolean;
  later?: { name: string; message: string };
  cpuLoss: number;
}

let runs = 0;
/** faults.mjs under these simulator settings, sampling `rows` rows after its steps (0: none). */
function run(settings: Record<string, string>, rows = 0): Outcome {
  const out = join(dir, `${runs++}.json`);
  execFileSync('node', ['test/device/faults.mjs', out, String(rows)], {
    env: { ...process.env, ...settings },
    stdio: 'pipe',
    timeout: 120_000,
  });
  const outcome = JSON.parse(readFileSync(out, 'utf8')) as Outcome;
  expect(outcome.cpuLoss).toBeGreaterThan(0); // alive: the CPU trains after the failure
  return outcome;
}

/** The failure was a typed BackendError during `during`, matching `message`; the model kept its state and trains on. */
function recovered(outcome: Outcome, during: string, message: RegExp) {
  expect(outcome.failed?.name).toBe('BackendError');
  expect(outcome.failed?.code).toBe('DNFT_BACKEND');
  expect(outcome.failed?.during).toBe(during);
  expect(outcome.failed?.message).toMatch(message);
  expect(outcome.kept).toBe(true);
  expect(outcome.trainsOn).toBe(true);
}

describe.runIf(TEST_DEVICE === 'cuda')('GPU failures', () => {
  it('out of memory at the simulated capacity: a large sample fails, the model trains on', () => {
    // The workspace of 200,000 rows does not fit in 16 MiB; θ, its gradient, the AdamW moments and the update's
    // backup do. (A failed workspace allocation used to leave the model's activation pointers null at the old
    // capacity: the next step crashed the process.)
    const outcome = run({ CUDASIM_MEM: '16M' }, 200_000);
    expect(outcome.steps).toBe(3);
    recovered(outcome, 'sample', /CUDA out of memory allocating \d+ bytes on device 0/);
  });

  it('a capacity below the model: creating it is a BackendError', () => {
    const outcome = run({ CUDASIM_MEM: '2M' });
    expect(outcome.failed).toMatchObject({ name: 'BackendError', during: 'create' });
    expect(outcome.failed?.message).toMatch(/out of memory/);
  });

  it('a failing allocation, kernel launch or copy: a BackendError naming it, nothing applied', () => {
    recovered(run({ CUDASIM_FAIL: 'cudaMalloc:3' }), 'step 0', /out of memory/);
    recovered(run({ CUDASIM_FAIL: 'launch:60' }), 'step 0', /CUDA error in \w+: too many resources requested/);
    recovered(run({ CUDASIM_FAIL: 'cudaMemcpyAsync:20' }), 'step 1', /CUDA error in cudaMemcpyAsync/);
  });

  it('a launch failing inside the AdamW update: θ, the moments and the step exactly as before', () => {
    // One launch per parameter tensor; a failure part-way used to leave the tensors before it stepped and the rest
    // not. In the second step (moments from the first), and in the first (moments created by it).
    recovered(run({ CUDASIM_FAIL: 'launch:258' }), 'step 1', /CUDA error in adamw: too many resources requested/);
    recovered(run({ CUDASIM_FAIL: 'launch:136' }), 'step 0', /CUDA error in adamw: too many resources requested/);
  });

  it('a fault inside a kernel is sticky: the step and every later call are BackendErrors, the process lives', () => {
    const outcome = run({ CUDASIM_FAIL: 'kernel:150' });
    expect(outcome.steps).toBe(1);
    expect(outcome.failed).toMatchObject({ name: 'BackendError', during: 'step 1' });
    expect(outcome.failed?.message).toMatch(/unspecified launch failure/);
    // State access after it too (it used to throw an untyped Error).
    expect(outcome.later?.name).toBe('BackendError');
    expect(outcome.later?.message).toMatch(/unspecified launch failure/);
  });
});
