// `npm run bench`: benchmark rows measured side by side with their peers in one run (shared/spec benchmarks.md).
// Prints a Markdown table and writes it as JSON under bench/results/, named after the machine.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { CONFIG_M, FlowMatchingTrainer, type NetConfig, setThreads, Tensor, VelocityNet } from '../lib/index.js';
import { packageRoot } from '../lib/native.js';

const THREADS = Number(process.env.DNFT_BENCH_THREADS ?? 2);
const BATCH = Number(process.env.DNFT_BENCH_BATCH ?? 256);
const ITERS = Number(process.env.DNFT_BENCH_ITERS ?? 10);
const PYTHON = process.env.DNFT_PYTHON ?? '/usr/bin/python3';

interface Row {
  row: string;
  what: string;
  ours: number;
  peer: number | null;
  unit: string;
  ratio: number | null;
  fractionOfPeak: number | null;
  note?: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** FLOPs of one flow-matching training step: forward, weight gradients, input gradients (none for the first layers). */
function trainingFlops(c: NetConfig, batch: number): number {
  const W = c.width;
  const E = c.mlpRatio * W;
  const linears = [
    c.timeFeatures * W,
    W * W,
    c.dataDim * W,
    ...Array(c.depth).fill(2 * W * W + 2 * W * E),
    W * c.dataDim,
  ];
  const macs = linears.reduce((s, v) => s + v, 0);
  const noInputGrad = c.timeFeatures * W + c.dataDim * W;
  return 2 * batch * (macs + macs + (macs - noInputGrad));
}

/** The CPU's FMA peak in FLOP/s for `threads` cores: AVX2 gives 2 FMA units × 8 floats × 2 FLOPs per cycle. */
function cpuPeak(threads: number): { flops: number; ghz: number } {
  const mhz = Number(
    readFileSync('/proc/cpuinfo', 'utf8').match(/cpu MHz\s*:\s*([\d.]+)/)?.[1] ?? cpus()[0]?.speed ?? 2000,
  );
  return { flops: threads * 32 * mhz * 1e6, ghz: mhz / 1000 };
}

async function benchB1(): Promise<{ msPerStep: number; peakMiB: number }> {
  const net = VelocityNet.create({ preset: 'M' }, { seed: 1 });
  // Non-zero adaLN and output weights, so every GEMM does real work.
  const flat = net.getParameters();
  const noise = Tensor.randn([flat.length], { seed: 2 }).storage;
  for (let i = 0; i < flat.length; i++) flat[i] = (flat[i] as number) + 0.01 * (noise[i] as number);
  net.setParameters(flat);
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-4 });
  const x0 = Tensor.randn([BATCH, CONFIG_M.dataDim], { seed: 3 });
  const cond = Tensor.fromInt32(
    Int32Array.from({ length: BATCH * CONFIG_M.condSlots }, (_, i) => i % CONFIG_M.vocabSize),
    [BATCH, CONFIG_M.condSlots],
  );
  const rssBefore = process.resourceUsage().maxRSS;
  for (let i = 0; i < 2; i++) await trainer.step({ x0, cond });
  const times: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    const start = performance.now();
    await trainer.step({ x0, cond });
    times.push(performance.now() - start);
  }
  return { msPerStep: median(times), peakMiB: (process.resourceUsage().maxRSS - rssBefore) / 1024 };
}

function torchB1():
  | { ms_per_step_median: number; peak_mem_mib: number; blas: string; torch_version: string }
  | { error: string } {
  const run = spawnSync(
    PYTHON,
    [
      join(packageRoot(), 'bench/pytorch/bench_b1.py'),
      '--threads',
      String(THREADS),
      '--batch',
      String(BATCH),
      '--iters',
      String(ITERS),
    ],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: String(THREADS) } },
  );
  if (run.status !== 0)
    return { error: (run.stderr || run.error?.message || 'failed').trim().split('\n').at(-1) ?? 'failed' };
  return JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}');
}

async function main() {
  setThreads(THREADS);
  const peak = cpuPeak(THREADS);
  const flops = trainingFlops(CONFIG_M, BATCH);
  console.log(`B1: config M, batch ${BATCH}, ${THREADS} threads; ${(flops / 1e9).toFixed(1)} GFLOP per step`);
  const ours = await benchB1();
  const torch = torchB1();
  const peer = 'error' in torch ? null : torch;
  const samples = (ms: number) => (BATCH * 1000) / ms;
  const rows: Row[] = [
    {
      row: 'B1',
      what: `flow-matching training step, config M, batch ${BATCH}`,
      ours: samples(ours.msPerStep),
      peer: peer ? samples(peer.ms_per_step_median) : null,
      unit: 'samples/s',
      ratio: peer ? peer.ms_per_step_median / ours.msPerStep : null,
      fractionOfPeak: flops / (ours.msPerStep / 1000) / peak.flops,
      note: `ours ${ours.msPerStep.toFixed(1)} ms/step${peer ? `, PyTorch ${peer.ms_per_step_median.toFixed(1)} ms/step (torch ${peer.torch_version}, BLAS: ${peer.blas})` : ` (PyTorch peer failed: ${'error' in torch ? torch.error : ''})`}`,
    },
    {
      row: 'B5',
      what: 'peak memory growth during B1',
      ours: ours.peakMiB,
      peer: peer ? peer.peak_mem_mib : null,
      unit: 'MiB',
      ratio: peer ? ours.peakMiB / peer.peak_mem_mib : null,
      fractionOfPeak: null,
      note: 'max RSS growth from before the first step (lower is better; ratio = ours / peer)',
    },
  ];
  const fmt = (v: number | null, digits = 1) => (v === null ? 'n/a' : v.toFixed(digits));
  console.log('\n| row | what | ours | peer | unit | ratio | fraction of peak |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.row} | ${r.what} | ${fmt(r.ours)} | ${fmt(r.peer)} | ${r.unit} | ${fmt(r.ratio, 2)} | ${r.fractionOfPeak === null ? '' : `${(100 * r.fractionOfPeak).toFixed(1)}%`} |`,
    );
  }
  for (const r of rows) if (r.note) console.log(`${r.row}: ${r.note}`);
  console.log(
    `peak: ${THREADS} cores × 32 FLOP/cycle × ${peak.ghz.toFixed(2)} GHz = ${(peak.flops / 1e9).toFixed(0)} GFLOP/s (AVX2 FMA)`,
  );
  const machine = (cpus()[0]?.model ?? 'cpu').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${machine}-${THREADS}t.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine: cpus()[0]?.model, threads: THREADS, peakGflops: peak.flops / 1e9, rows }, null, 2)}\n`,
  );
  console.log(`written ${file}`);
}

await main();
