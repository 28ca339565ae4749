// `npm run bench -- distributed` (docs/distributed.md): DiffusionNFT epoch time on config D at 1 rank × 1 thread,
// 2 ranks × 1 thread (mpirun) and 1 rank × 2 threads, and the bytes the native step sums over the ranks per
// optimiser step; then a toy2d flow-matching step at 1 and 2 ranks against a plain blocking MPI_Allreduce of its
// gradient (bench/mpi-allreduce.cpp, compiled here with mpicxx), on a quiet machine and beside two busy processes (docs/reliability.md).
// Run as a worker (`--worker THREADS`, `--step-worker`) it times its own epochs or steps and rank 0 prints one
// JSON line.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_D, DiffusionNFT, FlowMatchingTrainer, setThreads, tasks, VelocityNet } from '../lib/index.js';

const EPOCHS = 3;
const STEPS = 30;
const STEP_BATCH = 64;
const MPIRUN_ENV = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
const rank0 = () => Number(process.env.OMPI_COMM_WORLD_RANK ?? 0) === 0;

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
  if (rank0()) {
    const params = net.paramCount;
    console.log(JSON.stringify({ seconds, params, bytesPerStep: 4 * params + 8 * 5 }));
  }
  net.dispose();
}

// Toy2d flow-matching steps (one thread per rank) over a global batch of STEP_BATCH: ms per step, and the process's
// CPU time per step (at 1 rank: the step's compute, which the plain-MPI model of the step spends per rank).
async function stepWorker(): Promise<void> {
  setThreads(1);
  const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
  const trainer = new FlowMatchingTrainer(net, { seed: 3 });
  const { x0, cond } = tasks.toy2d.batch(STEP_BATCH, 1, 0);
  for (let s = 0; s < 3; s++) await trainer.step({ x0, cond }); // warm-up
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let s = 0; s < STEPS; s++) await trainer.step({ x0, cond });
  const ms = (performance.now() - started) / STEPS;
  const { user, system } = process.cpuUsage(cpu);
  if (rank0()) console.log(JSON.stringify({ ms, cpuMs: (user + system) / 1000 / STEPS, params: net.paramCount }));
  net.dispose();
}

/** Runs `program` alone (1 rank) or under mpirun and returns rank 0's JSON line. */
function launch<T>(ranks: number, program: string[]): T {
  const [file, args] =
    ranks === 1
      ? [program[0] as string, program.slice(1)]
      : ['mpirun', ['--oversubscribe', '-np', String(ranks), ...program]];
  const out = execFileSync(file, args, { env: MPIRUN_ENV, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

const script = fileURLToPath(import.meta.url);

function measure(ranks: number, threads: number): { seconds: number; params: number; bytesPerStep: number } {
  return launch(ranks, ['node', script, '--worker', String(threads)]);
}

/** bench/mpi-allreduce.cpp compiled with the MPI's own wrapper into build/bench/. */
function allreduceProgram(): string {
  const source = fileURLToPath(new URL('../../bench/mpi-allreduce.cpp', import.meta.url));
  const program = fileURLToPath(new URL('../../build/bench/mpi-allreduce', import.meta.url));
  mkdirSync(dirname(program), { recursive: true });
  // The C API only: Open MPI's C++ bindings header does not compile cleanly under -Wextra.
  execFileSync('mpicxx', ['-O2', '-Wall', '-Wextra', '-Werror', '-DOMPI_SKIP_MPICXX', source, '-o', program]);
  return program;
}

/** Two processes that spin on a core each, as other work on a shared machine does; stopped by the caller. */
function busyProcesses(): ChildProcess[] {
  return [0, 1].map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

type ContentionRows = Record<'step1' | 'step2' | 'allreduce' | 'plainStep', number>;

/**
 * The step at 1 and 2 ranks, the plain MPI_Allreduce of its gradient at 2 ranks, and the plain-MPI model of the
 * 2-rank step (each rank spends half the 1-rank step's CPU time computing, then makes the step's two blocking sums),
 * in ms. `computeMs` fixes the model's compute (the quiet machine's), so that contention stretches it as it does
 * the real step's.
 */
function contentionRows(computeMs?: number): ContentionRows & { computeMs: number } {
  const program = allreduceProgram();
  const step1 = launch<{ ms: number; cpuMs: number; params: number }>(1, ['node', script, '--step-worker']);
  const step2 = launch<{ ms: number }>(2, ['node', script, '--step-worker']);
  const plain = launch<{ ms: number }>(2, [program, String(step1.params), String(STEPS)]);
  const compute = computeMs ?? step1.cpuMs / 2;
  const model = launch<{ ms: number }>(2, [program, String(step1.params), String(STEPS), compute.toFixed(3)]);
  return { step1: step1.ms, step2: step2.ms, allreduce: plain.ms, plainStep: model.ms, computeMs: compute };
}

/** DiffusionNFT epochs on config D at 1 rank × 1 thread, 2 ranks × 1 thread and 1 rank × 2 threads. */
function epochRows(): void {
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

if (process.argv[2] === '--worker') {
  await worker(Number(process.argv[3]));
} else if (process.argv[2] === '--step-worker') {
  await stepWorker();
} else {
  // `npm run bench -- distributed contention`: the contention rows alone.
  if (process.argv[2] !== 'contention') epochRows();
  const quiet = contentionRows();
  const busy = busyProcesses();
  let loaded: ContentionRows;
  try {
    loaded = contentionRows(quiet.computeMs);
  } finally {
    for (const p of busy) p.kill();
  }
  console.log(
    `\ntoy2d flow-matching step, batch ${STEP_BATCH}, 1 thread per rank (ms): quiet / beside two busy processes`,
  );
  const row = (name: string, key: keyof ContentionRows) =>
    console.log(`${name.padEnd(36)} ${quiet[key].toFixed(2).padStart(8)} ${loaded[key].toFixed(2).padStart(8)}`);
  row('1 rank, step', 'step1');
  row('2 ranks, step', 'step2');
  row('2 ranks, plain MPI_Allreduce', 'allreduce');
  row(`2 ranks, plain MPI step, ${quiet.computeMs.toFixed(1)} ms`, 'plainStep');
  const ratio = (r: ContentionRows) => (r.step2 / r.plainStep).toFixed(2);
  console.log(`the 2-rank step / the plain MPI step: quiet ${ratio(quiet)}×, busy ${ratio(loaded)}×`);
}
