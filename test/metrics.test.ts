// The metrics stream of run(): one record a line, every statistic of each epoch, consecutive epochs, and a resumed
// run continuing the same file (docs/dashboard.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiffusionNFT, FlowGRPO, type Prompt, tasks, VelocityNet } from '../lib/index.js';
import { MetricsLog } from '../lib/metrics/log.js';
import { legacyRecords, MetricsFormatError, type MetricsRecord, parseRecords } from '../lib/metrics/records.js';
import { RED, tempFolder } from './helpers.js';

const { toy2d } = tasks;
const dir = tempFolder('metrics');

const OPTIONS = {
  prompts: [toy2d.prompts[0]] as Prompt[],
  rewards: [RED],
  groups: 2,
  groupSize: 4,
  seed: 2,
};
const EVALUATE = { samplesPerPrompt: 8, steps: 4, every: 2 };

/** Every line of the run folder's metrics.jsonl, each parsed on its own. */
function lines(run: string): MetricsRecord[] {
  const text = readFileSync(join(run, 'metrics.jsonl'), 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as MetricsRecord);
}

const epochsOf = (records: MetricsRecord[]) => records.filter((r) => r.kind === 'epoch').map((r) => r.epoch);

describe('the metrics stream', () => {
  it('writes a start record, every epoch with all its statistics and each evaluation, and calls onRecord', async () => {
    const run = join(dir, 'nft');
    const trainer = new DiffusionNFT(VelocityNet.create(toy2d.config, { seed: 1 }), OPTIONS);
    const hooked: MetricsRecord[] = [];
    await trainer.run({ epochs: 3, metrics: run, evaluate: EVALUATE, onRecord: (r) => void hooked.push(r) });
    const records = lines(run);
    expect(hooked).toEqual(records);
    expect(records.map((r) => `${r.kind} ${r.epoch}`)).toEqual([
      'start 0',
      'epoch 1',
      'epoch 2',
      'evaluation 2',
      'epoch 3',
      'evaluation 3',
    ]);
    for (const r of records) expect(r).toMatchObject({ version: 1, time: expect.any(String) });
    expect(records[0]).toMatchObject({ trainer: 'DiffusionNFT', elapsed: 0 });
    const first = records[1] as Extract<MetricsRecord, { kind: 'epoch' }>;
    expect(first).toMatchObject({
      step: 1,
      samples: 8,
      reward: expect.any(Number),
      rewardStd: expect.any(Number),
      rewards: { red: expect.any(Number) },
      loss: expect.any(Number),
      gradNorm: expect.any(Number),
      lr: expect.any(Number),
      eta: expect.any(Number),
      seconds: { sample: expect.any(Number), reward: expect.any(Number), train: expect.any(Number) },
    });
    expect(first.rHistogram?.reduce((s, v) => s + v, 0)).toBe(8);
    expect(first.samplesPerSecond).toBeCloseTo(8 / (first.seconds?.total as number), 6);
    // elapsed is the sum of the epochs' seconds; an evaluation carries that of its epoch.
    const totals = records.flatMap((r) => (r.kind === 'epoch' ? [r.seconds?.total as number] : []));
    expect(records[5]?.elapsed).toBeCloseTo(
      totals.reduce((s, v) => s + v, 0),
      9,
    );
    expect(records[5]).toMatchObject({ reward: expect.any(Number), rewards: { red: expect.any(Number) }, samples: 8 });
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ groups: 2, groupSize: 4, seed: 2, solver: 'dpm2' });
    trainer.net.dispose();
  });

  it('records the clip fraction and approximate KL of FlowGRPO epochs', async () => {
    const run = join(dir, 'grpo');
    const trainer = new FlowGRPO(VelocityNet.create(toy2d.config, { seed: 1 }), OPTIONS);
    await trainer.run({ epochs: 2, metrics: run });
    const records = lines(run);
    expect(epochsOf(records)).toEqual([1, 2]);
    expect(records[1]).toMatchObject({
      clipFraction: expect.any(Number),
      approxKl: expect.any(Number),
      ratioMean: expect.any(Number),
      trainedSamples: expect.any(Number),
      loss: expect.any(Number),
    });
    trainer.net.dispose();
  });

  it('continues the same file on a resume, dropping the epochs the checkpoint did not reach', async () => {
    const run = join(dir, 'resumed');
    const checkpoint = join(dir, 'at-2.safetensors');
    const trainer = new DiffusionNFT(VelocityNet.create(toy2d.config, { seed: 1 }), OPTIONS);
    await trainer.run({ epochs: 2, metrics: run, checkpoint: { path: checkpoint }, evaluate: EVALUATE });
    // Two more epochs in a second call append; then the run "crashes" and they are lost with it.
    await trainer.run({ epochs: 2, metrics: run });
    expect(epochsOf(lines(run))).toEqual([1, 2, 3, 4]);
    trainer.net.dispose();

    const resumed = await DiffusionNFT.resume(checkpoint, OPTIONS);
    await resumed.run({ epochs: 3, metrics: run, evaluate: EVALUATE });
    const records = lines(run);
    expect(epochsOf(records)).toEqual([1, 2, 3, 4, 5]);
    // The run's start, the second call's and the resume's.
    expect(records.filter((r) => r.kind === 'start').map((r) => r.epoch)).toEqual([0, 2, 2]);
    expect(records.filter((r) => r.kind === 'evaluation').map((r) => r.epoch)).toEqual([2, 4, 5]);
    const elapsed = records.filter((r) => r.kind === 'epoch').map((r) => r.elapsed);
    expect(elapsed).toEqual([...elapsed].sort((a, b) => a - b));
    resumed.net.dispose();
  });

  it('parses whole lines only, and names a line that is not a record', () => {
    const good = '{"kind":"epoch","version":1,"epoch":1,"elapsed":1,"reward":0.5}\n';
    expect(parseRecords(`${good}{"kind":"epo`)).toHaveLength(1);
    expect(() => parseRecords(`${good}not json\n`)).toThrow(MetricsFormatError);
    expect(() => parseRecords(`${good}{"kind":"other","epoch":1}\n`)).toThrow(/line 2: not a metrics record/);
  });

  it('reads the metrics.json of earlier runs as records', () => {
    const points = JSON.parse(
      readFileSync('bench/results/2026-12-01-B4-Intel-Xeon-20min/DiffusionNFT-beta=1-lr-1e-4/metrics.json', 'utf8'),
    );
    const records = legacyRecords(points);
    const evaluations = records.filter((r) => r.kind === 'evaluation');
    expect(evaluations).toHaveLength(points.length);
    expect(evaluations[0]).toMatchObject({ version: 0, epoch: 0, elapsed: 0, strict: points[0].strict });
    expect(records.filter((r) => r.kind === 'epoch')).toHaveLength(points.length - 1);
    expect(() => legacyRecords({})).toThrow(MetricsFormatError);
  });

  it('writes and reads back where a job is and the scores it is measured against', async () => {
    const folder = join(dir, 'phases');
    const log = await MetricsLog.open({ dir: folder, epoch: 0, trainer: 'DiffusionNFT' });
    const error = { strict: 0.02, reward: 0.01 };
    await log.reference(0, { label: 'base, no CFG', reward: 0.4, strict: 0.2, samples: 192, standardError: error });
    const target = { unit: 'seconds' as const, done: 30, total: 60 };
    await log.progress(0, { phase: 'training', target, secondsLeft: 45 });
    await log.progress(0, { phase: 'finished', target });
    const records = parseRecords(readFileSync(join(folder, 'metrics.jsonl'), 'utf8'));
    expect(records.map((r) => r.kind)).toEqual(['start', 'reference', 'progress', 'progress']);
    expect(records[1]).toMatchObject({ label: 'base, no CFG', strict: 0.2, standardError: error });
    expect(records[2]).toMatchObject({ phase: 'training', target, secondsLeft: 45 });
    expect(records[3]).toMatchObject({ phase: 'finished' });
  });
});
