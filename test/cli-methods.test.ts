// `train --method grpo-fast | mixgrpo | grpo-guard` and `--sde cps` on a tiny shapes base: each runs, resumes, and
// its metrics stream records the method's own statistics.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempFolder } from './helpers.js';

const dir = tempFolder('cli-methods');

const epochs = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => r.kind === 'epoch');

describe('train with the likelihood methods', () => {
  it('runs and resumes each, with its statistics in the metrics stream', () => {
    const base = join(dir, 'base.safetensors');
    const pretrain = cli('pretrain', '--preset', 'M', '--steps', '2', '--batch', '8', '--out', base);
    expect(pretrain.status, pretrain.err).toBe(0);
    const config = join(dir, 'tiny.json');
    writeFileSync(config, JSON.stringify({ epochs: 1, evalEvery: 1, trainer: { groups: 2, groupSize: 2 } }));
    const runs: [string, string[], string[]][] = [
      ['grpo-fast', [], ['windowStart', 'ratioMean', 'clipFraction']],
      ['mixgrpo', ['--sde', 'cps'], ['windowStart', 'rolloutSteps', 'ratioMean']],
      ['grpo-guard', [], ['ratioMean', 'clipFraction', 'approxKl']],
    ];
    for (const [method, extra, fields] of runs) {
      const out = join(dir, method);
      const train = cli('train', '--method', method, ...extra, '--base', base, '--config', config, '--out', out);
      expect(train.status, train.err).toBe(0);
      expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
      const resumed = cli(
        'train',
        '--method',
        method,
        ...extra,
        '--base',
        join(out, 'checkpoint.safetensors'),
        '--resume',
        '--config',
        config,
        '--epochs',
        '2',
        '--out',
        out,
      );
      expect(resumed.status, resumed.err).toBe(0);
      const records = epochs(out);
      expect(records.map((r) => r.epoch)).toEqual([1, 2]);
      for (const field of fields) expect(typeof records[1]?.[field], `${method}: ${field}`).toBe('number');
      const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { trainer: { native: object } };
      if (extra.length > 0) expect(saved.trainer.native).toMatchObject({ sde: 'cps' });
    }
    const wrong = cli('train', '--method', 'nft', '--sde', 'cps', '--base', base, '--epochs', '1');
    expect(wrong.status).not.toBe(0);
    expect(wrong.err).toMatch(/--sde sets the step of the likelihood methods/);
  }, 600_000);
});
