// Data parallelism of models on the GPU (docs/distributed.md, "Models on the GPU: NCCL"): 2 ranks under Open MPI's
// mpirun, each on its own GPU, summing gradients in device memory over NCCL against the host-staged path. Runs with
// DNFT_TEST_DEVICE=cuda: in CI on the simulated GPU, whose libnccl.so.2 (native/tests/sim_nccl.cpp, named by
// DNFT_NCCL_LIBRARY) carries the collectives over MPI (docs/gpu.md, "The vitest suites on the simulated GPU").
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DEVICE } from './helpers.js';
import { LAUNCHERS, launch } from './mpi-launchers.js';

const dir = mkdtempSync(join(tmpdir(), 'dnft-mpi-gpu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Two simulated GPUs per process, so that each rank takes its own (its local rank, lib/distributed.ts).
const env = { ...LAUNCHERS['Open MPI'].env, CUDASIM_DEVICES: '2' };

/** θ, θ_old and the EMA of each of 2 ranks after 3 epochs of `trainer` with this deviceCollectives, and their stats. */
function run(trainer: 'nft' | 'grpo', deviceCollectives: 'nccl' | 'host') {
  const out = join(dir, `${trainer}-${deviceCollectives}`);
  const argv = launch('Open MPI', 2, [
    'node',
    'test/distributed/online.mjs',
    out,
    trainer,
    '3',
    `gpu-${deviceCollectives}`,
  ]);
  execFileSync(argv[0] as string, argv.slice(1), { env, stdio: 'pipe', timeout: 240_000 });
  return [0, 1].map((r) => JSON.parse(readFileSync(`${out}.${r}.json`, 'utf8'))[trainer]);
}

describe.runIf(TEST_DEVICE === 'cuda')('models on the GPU over 2 ranks', () => {
  for (const trainer of ['nft', 'grpo'] as const) {
    it(`${trainer}: NCCL keeps every parameter set identical on both ranks and equal to the host-staged sums`, () => {
      const [n0, n1] = run(trainer, 'nccl');
      const [h0, h1] = run(trainer, 'host');
      expect(Object.keys(n0.params)).toEqual(Object.keys(h0.params));
      for (const set of Object.keys(h0.params)) {
        expect(n1.params[set], `${set}: rank 1 against rank 0 over NCCL`).toEqual(n0.params[set]);
        expect(h1.params[set], `${set}: rank 1 against rank 0 over the host`).toEqual(h0.params[set]);
        // A sum of two floats is the same whichever rank adds: both paths give the same bits.
        expect(n0.params[set], `${set}: NCCL against the host path`).toEqual(h0.params[set]);
      }
      expect(n0.stats).toEqual(h0.stats);
      expect(n0.stats).toHaveLength(3);
    });
  }
});
