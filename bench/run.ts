// `npm run bench`: benchmark rows measured side by side with their peers in one run (bench/NOTES.md).
// Prints a Markdown table and writes it as JSON under bench/results/, named after the machine.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { native, packageRoot } from '../lib/core/native.js';
import {
  backendInfo,
  CONFIG_D,
  CONFIG_M,
  type DitConfig,
  FlowMatchingTrainer,
  type NetConfig,
  sample,
  setThreads,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import { NFT_LOSS_SCHEMA } from '../lib/options/nft-loss.js';
import { OPTIMIZER_SCHEMA } from '../lib/options/optimizer.js';
import { resolveOptions } from '../lib/options/schema.js';
import { type EpochBench, type EpochPhases, epochRow } from './epoch.js';
import { ortRollout } from './onnx.js';
import { openblasCore, peerEnv } from './peer-env.js';

const THREADS = Number(process.env.DNFT_BENCH_THREADS ?? 2);
const BATCH = Number(process.env.DNFT_BENCH_BATCH ?? 256);
const ITERS = Number(process.env.DNFT_BENCH_ITERS ?? 10);
const ROLLOUT = Number(process.env.DNFT_BENCH_ROLLOUT ?? 1152);
const DIT_BATCH = Number(process.env.DNFT_BENCH_DIT_BATCH ?? 64);
const ROLLOUT_ITERS = Math.max(3, Math.round(ITERS / 3));
// B3-ORT-D: the DiT's rollout size and timed rounds (a config-D rollout of 1152 samples takes about a minute).
const ORT_DIT_ROLLOUT = Number(process.env.DNFT_BENCH_ORT_DIT_ROLLOUT ?? ROLLOUT);
const ORT_DIT_ROUNDS = Number(process.env.DNFT_BENCH_ORT_DIT_ROUNDS ?? 1);
const PYTHON = process.env.DNFT_PYTHON ?? '/usr/bin/python3';
// B6: the epoch's prompt groups and samples per group, and its untimed and timed epochs.
const EPOCH: EpochBench = {
  groups: Number(process.env.DNFT_BENCH_EPOCH_GROUPS ?? 8),
  groupSize: Number(process.env.DNFT_BENCH_EPOCH_GROUP_SIZE ?? 8),
  warmup: Number(process.env.DNFT_BENCH_EPOCH_WARMUP ?? 1),
  epochs: Number(process.env.DNFT_BENCH_EPOCH_TIMED ?? 1),
  threads: THREADS,
  python: PYTHON,
};
// Only these rows (e.g. DNFT_BENCH_ROWS=B6 or B3-ORT,B3-ORT-D), default all; B5 needs B1.
const ONLY = process.env.DNFT_BENCH_ROWS?.split(',');
const wanted = (row: string) => ONLY === undefined || ONLY.includes(row);

interface Row {
  row: string;
  what: string;
  ours: number;
  peer: number | null;
  unit: string;
  ratio: number | null;
  fractionOfPeak: number | null;
  note?: string;
  /** B6: the seconds of each phase of the epoch. */
  phases?: { ours: EpochPhases; peer: EpochPhases | null };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Multiply-accumulates of the linear layers of one row's forward pass. */
function linearMacs(c: NetConfig): number {
  const W = c.width;
  const E = c.mlpRatio * W;
  return [
    c.timeFeatures * W,
    W * W,
    c.dataDim * W,
    ...Array(c.depth).fill(2 * W * W + 2 * W * E),
    W * c.dataDim,
  ].reduce((s, v) => s + v, 0);
}

/** FLOPs of one sample's forward pass through the DiT (docs/dit.md): linears, attention and the modulation. */
function ditForwardFlops(c: DitConfig): number {
  const W = c.width;
  const T = (c.imageSize / c.patch) ** 2;
  const P = c.patch * c.patch * c.channels;
  const perToken = P * W + c.depth * (4 * W * W + 2 * c.mlpRatio * W * W + 2 * T * W) + W * P;
  const perSample = c.timeFeatures * W + W * W + c.depth * 6 * W * W + 2 * W * W;
  return 2 * (T * perToken + perSample);
}

/** FLOPs of one row's forward pass. */
function forwardFlops(c: NetConfig): number {
  return 2 * linearMacs(c);
}

/** FLOPs of one flow-matching training step: forward, weight gradients, input gradients (none for the first layers). */
function trainingFlops(c: NetConfig, batch: number): number {
  const W = c.width;
  const macs = linearMacs(c);
  const noInputGrad = c.timeFeatures * W + c.dataDim * W;
  return 2 * batch * (macs + macs + (macs - noInputGrad));
}

/** The measured FMA throughput of one vector width, in GFLOP/s, on 1 thread and on all the bench's threads. */
interface PeakUnit {
  kernels: 'avx2' | 'avx512';
  oneThread: number;
  allThreads: number;
}

/**
 * The CPU's FMA peak, measured (native/cpu/fma_peak.h) for each vector width the CPU has; rows are judged against
 * the widest one's, on all threads. Null on a CPU with neither.
 */
function measuredPeak(threads: number): { units: PeakUnit[]; widest: PeakUnit } | null {
  const units: PeakUnit[] = [];
  for (const kernels of ['avx2', 'avx512'] as const) {
    try {
      // All threads need rounds where every one runs at once: rarer on a busy machine, so more rounds.
      const gflops = (t: number) => native().fmaPeak(kernels, t, t === 1 ? 0.5 : 3) / 1e9;
      units.push({ kernels, oneThread: gflops(1), allThreads: gflops(threads) });
    } catch {
      // This CPU lacks the width: the narrower ones stand.
    }
  }
  const widest = units.at(-1);
  return widest === undefined ? null : { units, widest };
}

/** A preset's network with small random values in every parameter, so every GEMM does real work. */
function benchNet(preset: 'M' | 'D' = 'M'): VelocityNet {
  const net = VelocityNet.create({ preset }, { seed: 1 });
  const flat = net.getParameters();
  const noise = Tensor.randn([flat.length], { seed: 2 }).storage;
  for (let i = 0; i < flat.length; i++) flat[i] = (flat[i] as number) + 0.01 * (noise[i] as number);
  net.setParameters(flat);
  return net;
}

function condTokens(batch: number): Tensor<'int32'> {
  return Tensor.fromInt32(
    Int32Array.from({ length: batch * CONFIG_M.condSlots }, (_, i) => i % CONFIG_M.vocabSize),
    [batch, CONFIG_M.condSlots],
  );
}

/** Median milliseconds of `iters` calls after `warmup` ones, and the growth of the peak RSS over all of them. */
async function time(call: () => Promise<unknown>, iters: number, warmup = 2): Promise<{ ms: number; peakMiB: number }> {
  const rssBefore = process.resourceUsage().maxRSS;
  for (let i = 0; i < warmup; i++) await call();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const start = performance.now();
    await call();
    times.push(performance.now() - start);
  }
  return { ms: median(times), peakMiB: (process.resourceUsage().maxRSS - rssBefore) / 1024 };
}

// Times `call` on `net`, then frees the network at once, so that no row's timing pays for freeing an earlier one's.
async function timeAndDispose(net: VelocityNet, call: () => Promise<unknown>, iters: number, warmup = 2) {
  try {
    return await time(call, iters, warmup);
  } finally {
    net.dispose();
  }
}

// B1: a flow-matching training step (interpolate, forward, MSE, backward, AdamW).
async function oursB1(batch: number, preset: 'M' | 'D' = 'M') {
  const net = benchNet(preset);
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-4 });
  const x0 = Tensor.randn([batch, CONFIG_M.dataDim], { seed: 3 });
  const cond = condTokens(batch);
  return timeAndDispose(
    net,
    () => trainer.step({ x0, cond }),
    preset === 'M' ? ITERS : Math.max(3, Math.round(ITERS / 2)),
  );
}

// B2: a DiffusionNFT optimiser step on `batch` (sample, time) rows: v_θ and v_old, the fused loss, backward, AdamW.
async function oursB2(batch: number) {
  const net = benchNet();
  net.model.copyParams('old', 'theta');
  const x0 = Tensor.randn([batch, CONFIG_M.dataDim], { seed: 4 }).storage;
  const r = Tensor.rand([batch], { seed: 5 }).storage;
  const cond = condTokens(batch).storage;
  const options = {
    ...resolveOptions('B2', { lr: 1e-4 }, OPTIMIZER_SCHEMA),
    ...resolveOptions('B2', { beta: 1, advClipMax: 5, adaptive: true }, NFT_LOSS_SCHEMA),
    seed: 6,
    timesPerSample: 1,
    microBatch: 0,
    firstSample: 0,
  };
  return timeAndDispose(net, () => net.enqueue(() => net.model.nftStep(x0, cond, r, batch, options)), ITERS);
}

// B3: a 10-step dpm2 rollout of `batch` samples.
async function oursB3(batch: number) {
  const net = benchNet();
  const cond = condTokens(batch);
  return timeAndDispose(
    net,
    () => sample(net, { cond, solver: 'dpm2', steps: 10, seed: 7, chunk: batch }),
    ROLLOUT_ITERS,
    1,
  );
}

interface TorchResult {
  ms_per_step_median: number;
  peak_mem_mib: number;
  blas: string;
  torch_version: string;
  /** The kernel OpenBLAS chose (peer-env.ts), added here from the peer's stderr. */
  openblas_core: string | null;
}

function torchRow(row: string, batch: number, iters: number, config?: object): TorchResult | { error: string } {
  const script = join(packageRoot(), 'bench/pytorch/bench_rows.py');
  const args = [script, '--row', row, '--threads', String(THREADS), '--batch', String(batch), '--iters', String(iters)];
  if (config) args.push('--config', JSON.stringify(config));
  const run = spawnSync(PYTHON, args, { encoding: 'utf8', env: peerEnv(THREADS) });
  if (run.status !== 0) {
    return { error: (run.stderr || run.error?.message || 'failed').trim().split('\n').at(-1) ?? 'failed' };
  }
  return { ...JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}'), openblas_core: openblasCore(run.stderr) };
}

// B3-ORT (config M) and B3-ORT-D (config D): our native dpm2 rollout beside onnxruntime-node running the exported
// network under our TypeScript solver, same threads, alternating (bench/onnx.ts).
async function ortRows(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [row, preset, batch, rounds] of [
    ['B3-ORT', 'M', ROLLOUT, ROLLOUT_ITERS],
    ['B3-ORT-D', 'D', ORT_DIT_ROLLOUT, ORT_DIT_ROUNDS],
  ] as const) {
    if (!wanted(row)) continue;
    const net = benchNet(preset);
    const r = await ortRollout(net, batch, THREADS, rounds).finally(() => net.dispose());
    const rate = (ms: number) => (batch * 1000) / ms;
    rows.push({
      row,
      what: `10-step dpm2 rollout of ${batch} samples, config ${preset}: native sampler vs onnxruntime-node + our TS solver`,
      ours: rate(r.ours),
      peer: rate(r.peer),
      unit: 'samples/s',
      ratio: r.peer / r.ours,
      fractionOfPeak: null,
      note: `ours ${r.ours.toFixed(0)} ms (one native forward of all samples ${r.oursForward.toFixed(0)} ms); onnxruntime-node ${r.ortVersion} ${r.peer.toFixed(0)} ms, of which session.run ${r.peerRun.toFixed(0)} ms and the TypeScript solver and copies ${(r.peer - r.peerRun).toFixed(0)} ms`,
    });
    console.log(`${row} done: ours ${r.ours.toFixed(0)} ms, onnxruntime-node ${r.peer.toFixed(0)} ms`);
  }
  return rows;
}

// B6: epochs of each method, ours and the peer's with the same resolved options, alternating.
async function epochRows(): Promise<Row[]> {
  const rows: Row[] = [];
  const seconds = (p: EpochPhases) =>
    `rollout ${p.rollout.toFixed(2)} s, rewards ${p.reward.toFixed(2)} s, training ${p.train.toFixed(2)} s`;
  for (const method of ['nft', 'flowgrpo'] as const) {
    const { ours, peer, torch, blas } = await epochRow(method, EPOCH);
    const failed = peer instanceof Error;
    const samples = EPOCH.groups * EPOCH.groupSize;
    rows.push({
      row: method === 'nft' ? 'B6-NFT' : 'B6-GRPO',
      what: `${method === 'nft' ? 'DiffusionNFT' : 'FlowGRPO'} epoch, shapes base (config D), ${samples} samples`,
      ours: ours.total,
      peer: failed ? null : peer.total,
      unit: 's/epoch',
      ratio: failed ? null : peer.total / ours.total,
      fractionOfPeak: null,
      phases: { ours, peer: failed ? null : peer },
      note: `ours ${seconds(ours)}; ${failed ? `PyTorch peer failed: ${peer.message}` : `PyTorch ${seconds(peer)} (torch ${torch}, BLAS: ${blas})`}`,
    });
    console.log(
      `${rows.at(-1)?.row} done: ours ${ours.total.toFixed(2)} s, PyTorch ${failed ? 'n/a' : `${peer.total.toFixed(2)} s`}`,
    );
  }
  return rows;
}

async function main() {
  setThreads(THREADS);
  const loadBefore = loadavg();
  const peak = measuredPeak(THREADS);
  const peakFlops = peak ? peak.widest.allThreads * 1e9 : null;
  const { cpuKernels, sgemmKernel } = backendInfo();
  let peerCore: string | null = null;
  const forward = forwardFlops(CONFIG_M);
  const specs: {
    row: string;
    what: string;
    batch: number;
    ours: (batch: number) => Promise<{ ms: number; peakMiB: number }>;
    flops: number;
    config?: object;
  }[] = [
    {
      row: 'B1',
      what: `flow-matching training step, batch ${BATCH}`,
      batch: BATCH,
      ours: oursB1,
      flops: trainingFlops(CONFIG_M, BATCH),
    },
    {
      row: 'B1-D',
      what: `flow-matching training step, config D (DiT), batch ${DIT_BATCH}`,
      batch: DIT_BATCH,
      ours: (batch: number) => oursB1(batch, 'D'),
      // The backward costs about twice the forward.
      flops: 3 * DIT_BATCH * ditForwardFlops(CONFIG_D),
      config: CONFIG_D,
    },
    {
      row: 'B2',
      what: `DiffusionNFT optimiser step, ${BATCH} rows`,
      batch: BATCH,
      ours: oursB2,
      flops: trainingFlops(CONFIG_M, BATCH) + BATCH * forward,
    },
    {
      row: 'B3',
      what: `10-step dpm2 rollout of ${ROLLOUT} samples`,
      batch: ROLLOUT,
      ours: oursB3,
      flops: 10 * ROLLOUT * forward,
    },
  ].filter((spec) => wanted(spec.row));
  console.log(`config M, ${THREADS} threads, PyTorch peer: ${PYTHON} (OpenBLAS expected; its BLAS is printed below)`);
  // A first B1 run that is not timed: the first steps of a process pay for first-touch page faults and the pool's
  // start-up. Its growth of the peak RSS is row B5 (activations, gradients and AdamW state, as PyTorch's).
  const warmup = specs.length > 0 ? await oursB1(BATCH) : { ms: 0, peakMiB: 0 };
  const rows: Row[] = [];
  let b1Memory: { ours: number; peer: number | null } | null = null;
  for (const spec of specs) {
    const ours = await spec.ours(spec.batch);
    const iters = spec.row === 'B3' ? ROLLOUT_ITERS : spec.row === 'B1-D' ? Math.max(3, Math.round(ITERS / 2)) : ITERS;
    const torch = torchRow(spec.row.slice(0, 2), spec.batch, iters, spec.config);
    const peer = 'error' in torch ? null : torch;
    peerCore = peer?.openblas_core ?? peerCore;
    if (spec.row === 'B1') b1Memory = { ours: warmup.peakMiB, peer: peer?.peak_mem_mib ?? null };
    const rate = (ms: number) => (spec.batch * 1000) / ms;
    rows.push({
      row: spec.row,
      what: spec.what,
      ours: rate(ours.ms),
      peer: peer ? rate(peer.ms_per_step_median) : null,
      unit: 'samples/s',
      ratio: peer ? peer.ms_per_step_median / ours.ms : null,
      fractionOfPeak: peakFlops ? spec.flops / (ours.ms / 1000) / peakFlops : null,
      note: `ours ${ours.ms.toFixed(1)} ms, ${(spec.flops / 1e9).toFixed(1)} GFLOP${peer ? `; PyTorch ${peer.ms_per_step_median.toFixed(1)} ms (torch ${peer.torch_version}, BLAS: ${peer.blas}, OpenBLAS core: ${peer.openblas_core ?? 'not printed'}${peakFlops ? `, ${((100 * spec.flops) / (peer.ms_per_step_median / 1000) / peakFlops).toFixed(1)}% of peak` : ''})` : `; PyTorch peer failed: ${'error' in torch ? torch.error : ''}`}`,
    });
    console.log(
      `${spec.row} done: ours ${ours.ms.toFixed(1)} ms, PyTorch ${peer ? peer.ms_per_step_median.toFixed(1) : 'n/a'} ms`,
    );
  }
  if (b1Memory) {
    rows.push({
      row: 'B5',
      what: 'peak memory growth during B1',
      ours: b1Memory.ours,
      peer: b1Memory.peer,
      unit: 'MiB',
      ratio: b1Memory.peer ? b1Memory.ours / b1Memory.peer : null,
      fractionOfPeak: null,
      note: 'max RSS growth over the timed steps (lower is better; ratio = ours / peer)',
    });
  }
  rows.push(...(await ortRows()));
  if (wanted('B6')) rows.push(...(await epochRows()));
  const fmt = (v: number | null, digits = 1) => (v === null ? 'n/a' : v.toFixed(digits));
  console.log('\n| row | what | ours | peer | unit | ratio | fraction of peak |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.row} | ${r.what} | ${fmt(r.ours, r.phases ? 2 : 1)} | ${fmt(r.peer, r.phases ? 2 : 1)} | ${r.unit} | ${fmt(r.ratio, 2)} | ${r.fractionOfPeak === null ? '' : `${(100 * r.fractionOfPeak).toFixed(1)}%`} |`,
    );
  }
  for (const r of rows) if (r.note) console.log(`${r.row}: ${r.note}`);
  for (const u of peak?.units ?? []) {
    console.log(
      `FMA peak (measured), ${u.kernels}: ${u.oneThread.toFixed(1)} GFLOP/s on 1 thread, ${u.allThreads.toFixed(1)} on ${THREADS}`,
    );
  }
  const loadAfter = loadavg();
  const load = (l: number[]) => l.map((v) => v.toFixed(2)).join(', ');
  console.log(
    `ours: ${cpuKernels} kernels (${sgemmKernel}); peer's OpenBLAS core: ${peerCore ?? 'not printed'}; load average before ${load(loadBefore)}, after ${load(loadAfter)}`,
  );
  const machine = (cpus()[0]?.model ?? 'cpu').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(dir, `${date.slice(0, 10)}-${machine}-${THREADS}t.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        date,
        machine: cpus()[0]?.model,
        threads: THREADS,
        peakGflops: peakFlops === null ? null : peakFlops / 1e9,
        fmaPeak: peak?.units ?? [],
        cpuKernels,
        sgemmKernel,
        peerOpenblasCore: peerCore,
        loadAverage: { before: loadBefore, after: loadAfter },
        rows,
      },
      null,
      2,
    )}\n`,
  );
  console.log(`written ${file}`);
}

await main();
