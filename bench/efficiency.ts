// Row B4 (shared/spec benchmarks.md): DiffusionNFT against FlowGRPO on `shapes` from the same base checkpoint, the
// same prompts, samples per epoch and reward; each method with the settings of a sweep, to a time limit. Reports
// the epochs, network evaluations and training wall-clock each run needs to reach strict-score thresholds, the
// curves of all runs on one plot, and the speed-up. `node dist/bench/efficiency.js --base base.safetensors`.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { type RunPoint, trainShapes, writeCurves } from '../lib/jobs/shapes.js';
import { packageRoot } from '../lib/native.js';

interface RunSpec {
  name: string;
  method: 'nft' | 'flowgrpo';
  trainer: Record<string, unknown>;
}

// The default sweep: the settings each paper's ablations point at, scaled to this task.
const DEFAULT_SWEEP: RunSpec[] = [
  { name: 'DiffusionNFT β=1 lr 3e-4', method: 'nft', trainer: { beta: 1, lr: 3e-4 } },
  { name: 'DiffusionNFT β=0.1 lr 3e-4', method: 'nft', trainer: { beta: 0.1, lr: 3e-4 } },
  { name: 'FlowGRPO ε=1e-2 lr 3e-4', method: 'flowgrpo', trainer: { clipRange: 1e-2, lr: 3e-4 } },
  { name: 'FlowGRPO ε=0.2 lr 3e-4', method: 'flowgrpo', trainer: { clipRange: 0.2, lr: 3e-4 } },
];

/** Forward passes (one sample through the network) per epoch, from the trainer settings. */
function forwardsPerEpoch(spec: RunSpec, samples: number, steps: number): number {
  if (spec.method === 'nft') {
    const times = Math.max(1, Math.floor(steps * 0.99));
    const withRef = ((spec.trainer.klCoef as number | undefined) ?? 0) > 0 ? 1 : 0;
    // Rollout (dpm2: one evaluation per step) + per trained row v_θ (with its backward), v_old and maybe v_ref.
    return samples * steps + samples * times * (2 + withRef);
  }
  const cfg = ((spec.trainer.cfgScale as number | undefined) ?? 1) !== 1 ? 2 : 1;
  const transitions = Math.max(1, Math.floor(steps * 0.99));
  const withRef = ((spec.trainer.klCoef as number | undefined) ?? 0.04) > 0 ? 1 : 0;
  return cfg * (samples * steps + samples * transitions * (1 + withRef));
}

function firstReaching(points: readonly RunPoint[], threshold: number): RunPoint | undefined {
  return points.find((p) => p.strict >= threshold);
}

const program = new Command()
  .requiredOption('--base <checkpoint>', 'the shapes base model both methods start from')
  .option('--minutes <n>', 'training wall-clock per run', Number, 10)
  .option('--eval-every <n>', 'epochs between evaluations', Number, 5)
  .option('--sweep <file>', 'JSON list of { name, method, trainer } runs (default: the built-in sweep)')
  .option('--thresholds <list>', 'strict-score thresholds', '0.5,0.7,0.9')
  .parse();
const o = program.opts<{ base: string; minutes: number; evalEvery: number; sweep?: string; thresholds: string }>();
const sweep: RunSpec[] = o.sweep ? JSON.parse(readFileSync(o.sweep, 'utf8')) : DEFAULT_SWEEP;
const thresholds = o.thresholds.split(',').map(Number);
const date = new Date().toISOString();
const machine = (cpus()[0]?.model ?? 'cpu').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
const dir = join(packageRoot(), 'bench', 'results', `${date.slice(0, 10)}-B4-${machine}`);
mkdirSync(dir, { recursive: true });

const results: { spec: RunSpec; points: RunPoint[]; forwards: number }[] = [];
for (const spec of sweep) {
  console.log(`\n== ${spec.name}`);
  const groups = (spec.trainer.groups as number | undefined) ?? 16;
  const groupSize = (spec.trainer.groupSize as number | undefined) ?? 8;
  const { points, net } = await trainShapes({
    method: spec.method,
    base: o.base,
    minutes: o.minutes,
    evalEvery: o.evalEvery,
    out: join(dir, spec.name.replace(/[^A-Za-z0-9.=]+/g, '-')),
    trainer: spec.trainer,
    log: (line) => console.log(line),
  });
  net.dispose();
  results.push({ spec, points, forwards: forwardsPerEpoch(spec, groups * groupSize, 10) });
}

console.log(
  `\n| run | best strict | epochs | ${thresholds.map((t) => `to ${t}: epochs / forwards / s`).join(' | ')} |`,
);
console.log(`| --- | --- | --- | ${thresholds.map(() => '---').join(' | ')} |`);
for (const r of results) {
  const best = Math.max(...r.points.map((p) => p.strict));
  const cells = thresholds.map((t) => {
    const p = firstReaching(r.points, t);
    return p ? `${p.epoch} / ${(p.epoch * r.forwards).toExponential(2)} / ${p.seconds.toFixed(0)}` : 'not reached';
  });
  console.log(`| ${r.spec.name} | ${best.toFixed(3)} | ${r.points.at(-1)?.epoch ?? 0} | ${cells.join(' | ')} |`);
}
// The speed-up: the best DiffusionNFT run against the best FlowGRPO run, in wall-clock to each threshold reached by both.
const bestOf = (method: string) =>
  results
    .filter((r) => r.spec.method === method)
    .sort((a, b) => Math.max(...b.points.map((p) => p.strict)) - Math.max(...a.points.map((p) => p.strict)))[0];
const nft = bestOf('nft');
const grpo = bestOf('flowgrpo');
const speedups = thresholds.map((t) => {
  const a = nft && firstReaching(nft.points, t);
  const b = grpo && firstReaching(grpo.points, t);
  return {
    threshold: t,
    nftSeconds: a?.seconds ?? null,
    grpoSeconds: b?.seconds ?? null,
    speedup: a && b ? b.seconds / Math.max(a.seconds, 1e-9) : null,
  };
});
for (const s of speedups) {
  console.log(
    `strict ${s.threshold}: DiffusionNFT ${s.nftSeconds?.toFixed(0) ?? 'not reached'} s, FlowGRPO ${s.grpoSeconds?.toFixed(0) ?? 'not reached'} s${s.speedup ? `, speed-up ${s.speedup.toFixed(1)}×` : ''}`,
  );
}
await writeCurves(
  dir,
  results.map((r) => ({ name: r.spec.name, points: r.points })),
);
writeFileSync(
  join(dir, 'results.json'),
  `${JSON.stringify({ date, machine: cpus()[0]?.model, base: o.base, minutes: o.minutes, results, speedups }, null, 2)}\n`,
);
console.log(`written ${dir}`);
