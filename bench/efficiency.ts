// Row B4 (bench/NOTES.md) and the other experiments of docs/science.md: DiffusionNFT and FlowGRPO on `shapes` from the
// same base checkpoint, the same prompts, samples per epoch and reward, each run of a sweep file trained for a time
// limit once per seed and scored every few epochs on the test prompts (CFG-free, and with the guidance a run trains
// with). Writes each run's folder, report.md (mean and every seed per evaluation, time to each threshold per seed,
// speed-ups with their spread over seed pairs, per-category scores), results.json and the curves.
// `node dist/bench/efficiency.js --base base.safetensors --sweep bench/sweeps/faithful-b4.json`.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../lib/core/native.js';
import { runSweep } from './sweep/harness.js';
import { writeSweepReport } from './sweep/report.js';
import { parseSweep } from './sweep/spec.js';

// Without --sweep: the settings the B4 tables of docs/science.md were chosen from, one seed.
const DEFAULT_RUNS = [
  { name: 'DiffusionNFT β=1 lr 1e-4', method: 'nft', trainer: { beta: 1, lr: 1e-4 } },
  { name: 'DiffusionNFT β=1 lr 3e-4', method: 'nft', trainer: { beta: 1, lr: 3e-4 } },
  { name: 'FlowGRPO ε=0.2 lr 1e-4', method: 'flowgrpo', trainer: { clipRange: 0.2, lr: 1e-4 } },
  { name: 'FlowGRPO ε=1e-2 lr 3e-4', method: 'flowgrpo', trainer: { clipRange: 1e-2, lr: 3e-4 } },
];

const list = (text: string) => text.split(',').map(Number);
const program = new Command()
  .requiredOption('--base <checkpoint>', 'the shapes base model every run starts from')
  .option(
    '--sweep <file>',
    'JSON sweep: { settings..., runs: [{ name, method, trainer, ... }] } or a list of runs (docs/science.md)',
  )
  .option('--minutes <n>', "training wall-clock per run and seed (default: the sweep's, else 10)", Number)
  .option('--epochs <n>', 'or stop each run at this many epochs', Number)
  .option('--eval-every <n>', "epochs between evaluations (default: the sweep's, else 5)", Number)
  .option('--eval-samples <n>', "samples of each test prompt per evaluation (default: the sweep's, else 8)", Number)
  .option('--seeds <list>', "trainer seeds, each run trained once per seed (default: the sweep's, else 1)", list)
  .option('--thresholds <list>', "strict-score thresholds (default: the sweep's, else 0.25,0.3,0.35)", list)
  .option('--reward-thresholds <list>', "test-reward thresholds (default: the sweep's, else 0.42,0.46,0.5)", list)
  .option('--out <dir>', 'results folder (default: bench/results/<date>-<sweep name>-<machine>)')
  .option('--report-only', 'train nothing: report the seeds the results folder holds finished')
  .parse();
const o = program.opts<{
  base: string;
  sweep?: string;
  minutes?: number;
  epochs?: number;
  evalEvery?: number;
  evalSamples?: number;
  seeds?: number[];
  thresholds?: number[];
  rewardThresholds?: number[];
  out?: string;
  reportOnly?: boolean;
}>();
const sweep = parseSweep(o.sweep ? JSON.parse(readFileSync(o.sweep, 'utf8')) : DEFAULT_RUNS, {
  minutes: o.minutes,
  epochs: o.epochs,
  evalEvery: o.evalEvery,
  evalSamples: o.evalSamples,
  seeds: o.seeds,
  thresholds: o.thresholds,
  rewardThresholds: o.rewardThresholds,
});
const date = new Date().toISOString();
const machine = (cpus()[0]?.model ?? 'cpu').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
const name = o.sweep ? (o.sweep.split('/').at(-1) as string).replace(/\.json$/, '') : 'B4';
const dir = o.out ?? join(packageRoot(), 'bench', 'results', `${date.slice(0, 10)}-${name}-${machine}`);
const controller = new AbortController();
process.once('SIGINT', () => {
  console.log('\nstopping after the current epoch; the report covers what ran');
  controller.abort();
});
const results = await runSweep({
  sweep,
  base: o.base,
  out: dir,
  log: (line) => console.log(line),
  signal: controller.signal,
  reportOnly: o.reportOnly,
});
const header = [
  `# ${name} on shapes`,
  '',
  `${date}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} CPUs), base ${o.base}; ${sweep.epochs !== undefined ? `${sweep.epochs} epochs or ` : ''}${sweep.minutes} minutes of training per run and seed (evaluations excluded), evaluated every ${sweep.evalEvery} epochs on the 48 test prompts × ${sweep.evalSamples} samples (40-step Euler, evaluation seed 12345), seeds ${sweep.seeds.join(', ')}.`,
];
await writeSweepReport(dir, sweep, results, header, { date, machine: cpus()[0]?.model, base: o.base });
console.log(`written ${dir}/report.md`);
