// The benchmark sweep harness (bench/sweep/): its arithmetic over seeds on synthetic points, the sweep file's checks,
// and a tiny 2-seed sweep with a guided FlowGRPO run end to end.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { meanCurve, seedEnds, speedup, speedupToBest, timeToThreshold } from '../bench/sweep/aggregate.js';
import { DONE_FILE, runSweep, seedEpochs } from '../bench/sweep/harness.js';
import {
  bestText,
  hostSpread,
  reportMarkdown,
  speedupText,
  threadsText,
  writeSweepReport,
} from '../bench/sweep/report.js';
import { forwardsPerEpoch, parseSweep, runFolder } from '../bench/sweep/spec.js';
import { Tensor } from '../lib/core/tensor.js';
import { backendInfo, VelocityNet } from '../lib/index.js';
import { type MetricsRecord, parseRecords } from '../lib/metrics/records.js';
import { writeCheckpoint } from '../lib/model/checkpoint.js';
import { rewardOf, TEST_PROMPTS } from '../lib/tasks/shapes/index.js';
import { tempFolder } from './helpers.js';

const dir = tempFolder('sweep');

const pts = (values: number[], secondsPerEpoch: number, every = 4) =>
  values.map((value, i) => ({ epoch: i * every, seconds: i * every * secondsPerEpoch, value }));

describe('sweep arithmetic', () => {
  it("names the threads the seeds trained with, each seed's where they differ or one was not recorded", () => {
    expect(threadsText([1, 1])).toBe('1 thread each');
    expect(threadsText([2, 2])).toBe('2 threads each');
    expect(threadsText([1, 2])).toBe('1, 2 threads');
    expect(threadsText([2, null])).toBe('2, ? threads');
  });

  it('averages seeds at the epochs all of them reached, keeping each seed', () => {
    const curve = meanCurve([pts([0.2, 0.3, 0.5], 10), pts([0.2, 0.1], 12)]);
    expect(curve.map((p) => p.epoch)).toEqual([0, 4]);
    expect(curve[1]?.value).toBeCloseTo(0.2, 12);
    expect(curve[1]?.seconds).toBeCloseTo(44, 12);
    expect(curve[1]?.values).toEqual([0.3, 0.1]);
    expect(meanCurve([])).toEqual([]);
  });

  it("finds a seed's best evaluation (the first at its highest value) and its last", () => {
    const points = pts([0.2, 0.4, 0.3, 0.4, 0.35], 10);
    expect(seedEnds(points)).toEqual({ best: points[1], final: points[4] });
    expect(seedEnds([])).toBeNull();
  });

  it('finds the first evaluation at or above a threshold, or none', () => {
    const points = pts([0.2, 0.29, 0.3, 0.25, 0.4], 10);
    expect(timeToThreshold(points, 0.3)).toEqual({ epoch: 8, seconds: 80 });
    expect(timeToThreshold(points, 0.2)).toEqual({ epoch: 0, seconds: 0 });
    expect(timeToThreshold(points, 0.5)).toBeNull();
    expect(timeToThreshold([{ epoch: 0, seconds: 0, value: Number.NaN }], 0)).toBeNull();
  });

  it('gives the speed-up as the ratio of mean times with the min–max over seed pairs, or a lower bound', () => {
    const a = [
      { epoch: 8, seconds: 100 },
      { epoch: 12, seconds: 200 },
    ];
    const b = [
      { epoch: 16, seconds: 300 },
      { epoch: 20, seconds: 600 },
    ];
    const s = speedup(a, b, [1200, 1200]);
    expect(s.ratio).toBeCloseTo(3, 12); // 450 / 150
    expect(s.min).toBeCloseTo(1.5, 12); // 300 / 200
    expect(s.max).toBeCloseTo(6, 12); // 600 / 100
    expect(s.bound).toBe('=');
    expect(speedupText(s)).toBe('3.00× (1.50–6.00×)');
    // A seed of b never reached it: its 1200 s of training stand in, and the figures are lower bounds.
    const bounded = speedup(a, [b[0] ?? null, null], [1200, 1200]);
    expect(bounded.ratio).toBeCloseTo(750 / 150, 12);
    expect(bounded.max).toBeCloseTo(12, 12);
    expect(bounded.bound).toBe('>');
    expect(speedupText(bounded)).toBe('> 5.00× (> 1.50–12.00×)');
    expect(speedup(a, [null, null], [1000, 1000]).min).toBeCloseTo(5, 12);
    // A seed of a never reached it: a is not faster there.
    expect(speedup([a[0] ?? null, null], b, [1200, 1200]).ratio).toBeNull();
    // A run whose base already met it (every seed at epoch 0) gives no ratio: it was 0.00× and, for a, infinite.
    const start = { epoch: 0, seconds: 0 };
    expect(speedupText(speedup(a, [start, start], [1200, 1200]))).toBe('b meets it untrained');
    expect(speedupText(speedup([start, start], b, [1200, 1200]))).toBe('a meets it untrained');
    expect(speedup(a, [start, b[1] ?? null], [1200, 1200]).ratio).toBeCloseTo(300 / 150, 12);
  });

  it("gives the speed-up to b's best: b's time to its highest mean over a's time to reach it, or an upper bound", () => {
    const curve = (values: number[], secondsPerEpoch: number) =>
      meanCurve([pts(values, secondsPerEpoch), pts(values, secondsPerEpoch)]);
    const b = curve([0.2, 0.25, 0.3, 0.28], 10); // best 0.3 at epoch 8, 80 s
    const s = speedupToBest(curve([0.2, 0.31, 0.4], 5), b, 1200); // a reaches 0.3 at epoch 4, 20 s
    expect(s).toEqual({ level: 0.3, bSeconds: 80, aSeconds: 20, ratio: 4, bound: '=' });
    expect(bestText(s)).toBe('0.300 | 80 s | 20 s | 4.00×');
    // The first point at or above the level counts, not the best of a.
    expect(speedupToBest(curve([0.2, 0.3, 0.5], 10), b, 1200)).toMatchObject({ aSeconds: 40, ratio: 2 });
    // a never reaches it: its whole training stands in, and the figure is an upper bound.
    const slow = speedupToBest(curve([0.2, 0.22, 0.29], 10), b, 400);
    expect(slow).toMatchObject({ aSeconds: null, ratio: 0.2, bound: '<' });
    expect(bestText(slow)).toBe('0.300 | 80 s | not reached | < 0.20×');
    expect(bestText(speedupToBest(curve([0.3], 5), curve([0.3, 0.2], 10), 1200))).toBe(
      'b never rises above its start | – | – | no figure',
    );
    expect(bestText(speedupToBest(curve([0.35, 0.4], 5), b, 1200))).toBe("a's start meets it | – | – | no figure");
  });

  it('counts network evaluations per epoch, guided transitions twice', () => {
    const nft = { name: 'n', method: 'nft' as const, trainer: {} };
    // 128 samples: 10 dpm2 steps, then v_θ and v_old at 9 times.
    expect(forwardsPerEpoch(nft)).toBe(128 * 10 + 128 * 9 * 2);
    const grpo = { name: 'g', method: 'flowgrpo' as const, trainer: {} };
    // 10 SDE steps, then v_θ and v_ref at 9 transitions: the 3584 of docs/science.md.
    expect(forwardsPerEpoch(grpo)).toBe(3584);
    // Guided at t ≤ 0.6: the grid times 0.6 … 0.1 (6 of 10 rollout steps, 5 of the 9 trained) count twice.
    const guided = { ...grpo, trainer: { cfgScale: 5, cfgInterval: [0, 0.6] } };
    expect(forwardsPerEpoch(guided)).toBe(128 * (10 + 6 + (9 + 5) * 2));
    expect(forwardsPerEpoch({ name: 'a', method: 'awm', trainer: {} })).toBe(128 * 10 + 128 * 6 * 3);
    expect(forwardsPerEpoch({ name: 'd', method: 'dgpo', trainer: {} })).toBe(128 * 10 + 128 * 4 * 3);
    // The likelihood methods: Fast and MixGRPO train their window (3, 4 transitions), none has a KL term.
    expect(forwardsPerEpoch({ name: 'f', method: 'grpo-fast' as const, trainer: {} })).toBe(128 * (10 + 3));
    expect(forwardsPerEpoch({ name: 'm', method: 'mixgrpo' as const, trainer: {} })).toBe(128 * (10 + 4));
    expect(forwardsPerEpoch({ name: 'q', method: 'grpo-guard' as const, trainer: {} })).toBe(128 * (10 + 9));
  });

  it('reads the B7 cohorts: every method, each cohort with its own baselines', () => {
    const cohorts = ['b7-methods.json', 'b7-methods-2.json'].map((f) =>
      parseSweep(JSON.parse(readFileSync(`bench/sweeps/${f}`, 'utf8'))),
    );
    expect(new Set(cohorts.flatMap((c) => c.runs.map((r) => r.method)))).toEqual(
      new Set(['nft', 'flowgrpo', 'awm', 'dgpo', 'grpo-fast', 'mixgrpo', 'grpo-guard']),
    );
    for (const c of cohorts) {
      const names = c.runs.map((r) => r.name);
      expect(names).toContain('DiffusionNFT β=1 lr 1e-4');
      expect(names).toContain('FlowGRPO ε=0.2 lr 1e-4');
    }
    expect(cohorts.map((c) => c.compare.length)).toEqual([16, 5]);
  });

  it("takes the median of a seed's evaluation times as its host's yardstick", () => {
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString();
    const evaluation = (epoch: number, from: number, to: number) => [
      { kind: 'progress', version: 1, epoch, time: at(from), phase: 'evaluating' },
      { kind: 'evaluation', version: 1, epoch, time: at(to) },
    ];
    // 10 s, 30 s (a passing load), 11 s; an evaluation that never finished counts for nothing.
    const records = [
      ...evaluation(0, 0, 10),
      ...evaluation(8, 100, 130),
      ...evaluation(16, 200, 211),
      { kind: 'progress', version: 1, epoch: 24, time: at(300), phase: 'evaluating' },
    ] as MetricsRecord[];
    expect(seedEpochs(records).hostSeconds).toBe(11);
    expect(seedEpochs([]).hostSeconds).toBeNull();
  });

  it('tells seeds timed on hosts of different speed apart by their yardsticks', () => {
    const seed = (hostSeconds: number | null) => ({
      epochs: 1,
      perEpoch: { sample: 1, reward: 0, train: 1, total: 2 },
      hostSeconds,
    });
    expect(hostSpread([{ epochs: [seed(50), seed(null)] }, { epochs: [seed(60)] }])).toBeCloseTo(1.2, 12);
    expect(hostSpread([{ epochs: [seed(null)] }])).toBeNull();
    const run = (name: string, hostSeconds: number) => ({
      name,
      method: 'nft',
      seeds: [1],
      forwardsPerEpoch: 1,
      trainedSeconds: [10],
      threads: [1],
      epochs: [seed(hostSeconds)],
      asUsed: 'no CFG',
      views: [],
    });
    const pair = { view: 'no CFG', metric: 'strict' as const };
    const md = (b: number) =>
      reportMarkdown(
        {
          runs: [run('a', 50), run('b', b)],
          speedups: [{ a: 'a', b: 'b', ...pair, threshold: 0.3, speedup: { ratio: 2, min: 2, max: 2, bound: '=' } }],
          toBest: [{ a: 'a', b: 'b', ...pair, speedup: { none: 'b never rises above its start' } }],
        },
        ['# t'],
      );
    expect(md(55)).not.toMatch(/hosts of different speed|hosts differ/);
    expect(md(80)).toMatch(/timed on hosts of different speed.*1\.60× longer/);
    expect(md(80).match(/\(hosts differ\)/g)).toHaveLength(2);
    expect(md(80)).toContain('| 1 | 1 | 1.00 | 0.00 | 1.00 | 2.00 | 80.0 |');
  });
});

describe('sweep files', () => {
  const run = { name: 'a', method: 'nft', trainer: {} };
  it('fills the defaults, a guided FlowGRPO run is also scored with its guidance, flags win', () => {
    const sweep = parseSweep(
      {
        seeds: [1, 2],
        runs: [run, { name: 'g', method: 'flowgrpo', trainer: { cfgScale: 5, cfgInterval: [0, 0.6] } }],
      },
      { minutes: 3 },
    );
    expect(sweep.minutes).toBe(3);
    expect(sweep.seeds).toEqual([1, 2]);
    expect(sweep.compare).toEqual([['a', 'g']]);
    expect(sweep.runs[1]?.evalGuidance).toEqual([{ cfgScale: 5, cfgInterval: [0, 0.6] }]);
    expect(parseSweep([run]).evalEvery).toBe(5);
  });

  it('parses every sweep file of bench/sweeps', () => {
    const files = readdirSync('bench/sweeps').filter((f) => f.endsWith('.json'));
    expect(files).toContain('b7-methods.json');
    for (const file of files) {
      const sweep = parseSweep(JSON.parse(readFileSync(join('bench/sweeps', file), 'utf8')));
      expect(sweep.runs.length, file).toBeGreaterThan(0);
    }
  });

  it("names a run's folder in ASCII, its Greek letters spelt out, one folder per run of every sweep file", () => {
    expect(runFolder('MixGRPO-Flash ε=1e-3 τ=128')).toBe('MixGRPO-Flash-eps=1e-3-tau=128');
    expect(runFolder('DiffusionNFT β=1, η 0.5 (r32 α64)')).toBe('DiffusionNFT-beta=1-eta-0.5-r32-alpha64');
    for (const file of readdirSync('bench/sweeps').filter((f) => f.endsWith('.json'))) {
      const folders = parseSweep(JSON.parse(readFileSync(join('bench/sweeps', file), 'utf8'))).runs.map((r) =>
        runFolder(r.name),
      );
      for (const folder of folders) expect(folder, file).toMatch(/^[A-Za-z0-9.=]+(-[A-Za-z0-9.=]+)*$/);
      expect(new Set(folders).size, file).toBe(folders.length);
    }
  });

  it('rejects what it cannot run before anything trains', () => {
    const bad: [unknown, RegExp][] = [
      [[{ ...run, method: 'ppo' }], /method must be 'nft', 'flowgrpo', 'awm', 'dgpo'/],
      [[run, run], /same name/],
      [[{ ...run, trainer: { seed: 3 } }], /trainer.seed/],
      [[{ ...run, seeds: [1], trainer: { seed: 3 } }], /seeds or trainer.seed/],
      [[{ ...run, evalGuidance: [{ cfgScale: 1 }] }], /CFG-free, which every evaluation runs/],
      [[{ ...run, evalGuidance: [{ cfgScale: 3, cfgInterval: [0.7, 0.2] }] }], /cfgInterval must be \[lo, hi\]/],
      [
        [{ name: 'g', method: 'flowgrpo', trainer: { cfgScale: 5 }, evalGuidance: [{ cfgScale: 3 }] }],
        /must include the run's training guidance \(CFG 5\)/,
      ],
      [{ runs: [run], compare: [['a', 'b']] }, /compare\[0\] must be two different run names/],
      [{ runs: [run], seeds: [1, 1] }, /seeds lists a value twice/],
      [{ runs: [run], minutes: -1 }, /minutes must be a positive number/],
      [{ runs: [run], typo: 1 }, /unknown option 'typo'/],
      [{ runs: [{ ...run, reward: 'clip' }] }, /reward must be 'partial' or 'strict'/],
    ];
    for (const [json, message] of bad) expect(() => parseSweep(json), JSON.stringify(json)).toThrow(message);
  });

  it('parses the committed sweep files', () => {
    const files = readdirSync(join('bench', 'sweeps')).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      const sweep = parseSweep(JSON.parse(readFileSync(join('bench', 'sweeps', file), 'utf8')));
      expect(sweep.runs.length, file).toBeGreaterThan(0);
    }
  });
});

describe('shapes reward variants', () => {
  it('scales each sample by its category weight, and checks the weights', () => {
    const prompts = TEST_PROMPTS.slice(0, 40);
    const x = Tensor.zeros([prompts.length, 768]);
    const strict = rewardOf('strict', { single: 2 });
    expect(strict.name).toBe('shapes-strict-weighted');
    expect(strict.fn(x, prompts).every((r) => r === 0)).toBe(true); // blank images: no success
    expect(() => rewardOf('partial', { colour: 1 } as never)).toThrow(/no category 'colour'/);
    expect(() => rewardOf('partial', { single: -1 })).toThrow(/categoryWeights.single/);
    expect(() => rewardOf('exact' as never)).toThrow(/'partial' or 'strict'/);
  });
});

describe('a sweep end to end', () => {
  it('runs a 2-seed sweep with a guided FlowGRPO run and writes the report over seeds', async () => {
    const base = join(dir, 'base.safetensors');
    const net = VelocityNet.create({ preset: 'M', width: 16, depth: 1, timeFeatures: 8 }, { seed: 1 });
    await writeCheckpoint(base, net, false, {});
    net.dispose();
    const small = { groups: 2, groupSize: 2 };
    const sweep = parseSweep({
      epochs: 2,
      evalEvery: 1,
      evalSamples: 1,
      seeds: [1, 2],
      thresholds: [0.01],
      rewardThresholds: [0.01],
      runs: [
        { name: 'NFT', method: 'nft', trainer: small },
        { name: 'GRPO CFG', method: 'flowgrpo', trainer: { ...small, cfgScale: 3, cfgInterval: [0, 0.6] } },
      ],
    });
    const out = join(dir, 'sweep');
    const results = await runSweep({ sweep, base, out });
    expect(results.map((r) => r.seeds)).toEqual([
      [1, 2],
      [1, 2],
    ]);
    const records = parseRecords(readFileSync(join(out, 'GRPO-CFG', 'seed-2', 'metrics.jsonl'), 'utf8'));
    const evaluations = records.filter((r) => r.kind === 'evaluation');
    expect(evaluations.map((r) => r.epoch)).toEqual([0, 1, 2]);
    for (const e of evaluations) {
      expect(Object.keys(e.categories ?? {})).toContain('position');
      expect(Object.keys(e.guided ?? {})).toEqual(['CFG 3 at t ≤ 0.6']);
    }
    // The seed drives the prompts and the noise: the two seeds' first epochs differ.
    const firstLoss = (seed: number) => {
      const records = parseRecords(readFileSync(join(out, 'NFT', `seed-${seed}`, 'metrics.jsonl'), 'utf8'));
      return records.find((r) => r.kind === 'epoch')?.loss;
    };
    expect(Number.isFinite(firstLoss(1))).toBe(true);
    expect(firstLoss(1)).not.toBe(firstLoss(2));
    const report = await writeSweepReport(out, sweep, results, ['# smoke'], {});
    const grpo = report.runs[1];
    expect(grpo?.asUsed).toBe('CFG 3 at t ≤ 0.6');
    expect(grpo?.views.map((v) => v.view)).toEqual(['no CFG', 'CFG 3 at t ≤ 0.6']);
    expect(grpo?.views[1]?.curves.strict.map((p) => p.values.length)).toEqual([2, 2, 2]);
    expect(report.speedups.map((s) => s.view)).toEqual([
      'no CFG / CFG 3 at t ≤ 0.6',
      'no CFG / CFG 3 at t ≤ 0.6',
      'no CFG',
      'no CFG',
    ]);
    const md = readFileSync(join(out, 'report.md'), 'utf8');
    expect(md).toMatch(/\| epoch \| mean s \| strict mean \| seed 1 \| seed 2 \|/);
    // Each seed's epochs and seconds per epoch by phase, from its epoch records.
    expect(report.runs[0]?.epochs.map((e) => e.epochs)).toEqual([2, 2]);
    const nftRecords = parseRecords(readFileSync(join(out, 'NFT', 'seed-1', 'metrics.jsonl'), 'utf8'));
    const totals = nftRecords.flatMap((r) => (r.kind === 'epoch' && r.seconds ? [r.seconds.total] : []));
    expect(totals).toHaveLength(2);
    expect(report.runs[0]?.epochs[0]?.perEpoch.total).toBeCloseTo(totals.reduce((s, x) => s + x, 0) / 2, 12);
    expect(md).toContain('| seed | epochs | s / epoch: sampling | scoring | training | total |');
    // The host's yardstick, from the progress and evaluation records; none for a run also evaluated with guidance.
    for (const e of report.runs[0]?.epochs ?? []) expect(e.hostSeconds).toBeGreaterThan(0);
    expect(report.runs[1]?.epochs.map((e) => e.hostSeconds)).toEqual([null, null]);
    expect(report.runs[0]?.views[0]?.ends.strict.map((e) => e?.final.epoch)).toEqual([2, 2]);
    expect(md).toContain('| seed | best strict (epoch) | best test reward (epoch) | final epoch |');
    // The threads each seed trained with, from its own record (a report written later may run with other threads).
    const { threads } = backendInfo();
    const done = JSON.parse(readFileSync(join(out, 'NFT', 'seed-1', DONE_FILE), 'utf8'));
    expect(done.threads).toBe(threads);
    expect(md).toContain(`with ${threadsText([threads, threads])} (native CPU threads)`);
    expect(md).toMatch(/## Speed-ups/);
    expect(report.toBest.map((s) => `${s.view} ${s.metric}`)).toEqual([
      'no CFG / CFG 3 at t ≤ 0.6 strict',
      'no CFG / CFG 3 at t ≤ 0.6 testReward',
      'no CFG strict',
      'no CFG testReward',
    ]);
    expect(md).toContain("| a | b | evaluation | metric | b's best (mean) |");
    for (const file of [
      'report.md',
      'results.json',
      'sweep.json',
      'strict-vs-seconds.png',
      'category-position-vs-epoch.svg',
    ])
      expect(existsSync(join(out, file)), file).toBe(true);

    // Into the same folder again: a finished seed is reused when it would train the same thing, else trained anew.
    rmSync(join(out, 'GRPO-CFG', 'seed-2', DONE_FILE)); // as if stopped before its end
    const changed = parseSweep({
      ...JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')),
      runs: [
        { name: 'NFT', method: 'nft', trainer: { ...small, beta: 0.5 } },
        { name: 'GRPO CFG', method: 'flowgrpo', trainer: { cfgInterval: [0, 0.6], ...small, cfgScale: 3 } },
      ],
    });
    const lines: string[] = [];
    const again = await runSweep({ sweep: changed, base, out, log: (line) => lines.push(line) });
    const reused = lines.filter((l) => l.includes('reused')).map((l) => l.trim().split(':')[0]);
    expect(reused).toEqual(['== GRPO CFG, seed 1']);
    expect(again[1]?.points[0]).toEqual(results[1]?.points[0]);
    expect(again[1]?.trained).toEqual(results[1]?.trained);
    expect(existsSync(join(out, 'GRPO-CFG', 'seed-2', DONE_FILE))).toBe(true);
    // Report only: the finished seeds; seed 3 and a run that never ran are left out untrained.
    const nft = changed.runs[0] as (typeof changed.runs)[number];
    const unrun = { ...nft, name: 'NFT unrun', trainer: { ...nft.trainer, beta: 0.25 } };
    const three = { ...changed, seeds: [1, 2, 3], runs: [...changed.runs, unrun] };
    const reported = await runSweep({ sweep: three, base, out, reportOnly: true });
    expect(reported.map((r) => [r.spec.name, r.seeds])).toEqual([
      ['NFT', [1, 2]],
      ['GRPO CFG', [1, 2]],
    ]);
    expect(existsSync(join(out, 'NFT', 'seed-3'))).toBe(false);
    expect(existsSync(join(out, 'NFT-unrun'))).toBe(false);
  });
});
