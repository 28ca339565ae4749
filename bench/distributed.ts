// `npm run bench -- distributed` (docs/distributed.md): DiffusionNFT epoch time on config D at 1 rank × 1 thread,
// 2 ranks × 1 thread (mpirun) and 1 rank × 2 threads, and the bytes the native step sums over the ranks per
// optimiser step. Run as a worker (`--worker THREADS`) it times its own epochs and rank 0 prints one JSON line.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CONFIG_D, DiffusionNFT, setThreads, VelocityNet } from '../lib/index.js';

const EPOCHS = 3;

async function worker(threads: number): Promise<void> {
  setThreads(threads);
  const net = VelocityNet.create(CONFIG_D, { seed: 1 });
  const prompts = Array.from({ length: 8 }, (_, i) => ({ tokens: Array.from({ length: 8 }, (_, k) => (i + k) % 32) }));
  const trainer = new DiffusionNFT(net, {
    prompts,
    rewards: (x, p) => p.map((_, i) => (x.storage[i * 768] as number) ?? 0),
    groups: 4,
    groupSize: 4,
    steps: 4,
  });
  await trainer.epoch(); // warm-up
  const started = performance.now();
  for (let e = 0; e < EPOCHS; e++) await trainer.epoch();
  const seconds = (performance.now() - started) / 1000 / EPOCHS;
  if (Number(process.env.OMPI_COMM_WORLD_RANK ?? 0) === 0) {
    const params = net.paramCount;
    console.log(JSON.stringify({ seconds, params, bytesPerStep: 4 * params + 8 * 5 }));
  }
  net.dispose();
}

function measure(ranks: number, threads: number): { seconds: number; params: number; bytesPerStep: number } {
  const script = fileURLToPath(import.meta.url);
  const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
  const args = ['--oversubscribe', '-np', String(ranks), 'node', script, '--worker', String(threads)];
  const out = execFileSync(ranks === 1 ? 'node' : 'mpirun', ranks === 1 ? args.slice(4) : args, {
    env,
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

if (process.argv[2] === '--worker') {
  await worker(Number(process.argv[3]));
} else {
  const rows = [
    ['1 rank × 1 thread', measure(1, 1)],
    ['2 ranks × 1 thread (MPI)', measure(2, 1)],
    ['1 rank × 2 threads', measure(1, 2)],
  ] as const;
  console.log(`DiffusionNFT on config D, 4 groups × 4 samples, 4 rollout steps, 1 optimiser step per epoch`);
  for (const [name, r] of rows) console.log(`${name.padEnd(26)} ${r.seconds.toFixed(3)} s/epoch`);
  const { params, bytesPerStep } = rows[0][1];
  console.log(`parameters ${params}; summed over the ranks per optimiser step: ${bytesPerStep} bytes`);
}
