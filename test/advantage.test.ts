// optimalityProbability against a float64 numpy transcription of the official PerPromptStatTracker and the r clamp
// (reference/advantage.py), and its input checks.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { optimalityProbability, Tensor } from '../lib/index.js';
import { tempFolder } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const dir = tempFolder('adv');

interface Case {
  name: string;
  rewards: number[];
  groups: (number | string)[];
  advClipMax: number;
  std: 'global' | 'group';
  eps: number;
}

function randomCase(name: string, n: number, groups: number, seed: number, strings: boolean): Omit<Case, 'std'> {
  const u = Tensor.rand([2 * n], { seed }).storage;
  const rewards = Array.from({ length: n }, (_, i) => 3 * (u[i] as number) - 1);
  rewards[0] = 40; // an outlier: its advantage is clipped
  const ids = Array.from({ length: n }, (_, i) => Math.floor((u[n + i] as number) * groups));
  return { name, rewards, groups: strings ? ids.map((g) => `prompt ${g}`) : ids, advClipMax: 5, eps: 1e-4 };
}

const base = [
  randomCase('numeric ids, 48 groups of about 24', 1152, 48, 1, false),
  randomCase('string ids, 5 groups', 40, 5, 2, true),
  { ...randomCase('advClipMax 1, eps 0.01', 30, 3, 3, false), advClipMax: 1, eps: 0.01 },
  {
    name: 'singleton and constant groups',
    rewards: [1, 2, 2, 2, 5],
    groups: [0, 1, 1, 1, 2],
    advClipMax: 5,
    eps: 1e-4,
  },
];
const cases: Case[] = base.flatMap((c) => [
  { ...c, name: `${c.name}, global std`, std: 'global' as const },
  { ...c, name: `${c.name}, group std`, std: 'group' as const },
]);

describe('optimalityProbability vs the official stat tracker (numpy float64)', () => {
  let reference: { advantages: number[]; r: number[] }[] = [];
  beforeAll(() => {
    const inPath = join(dir, 'in.json');
    const outPath = join(dir, 'out.json');
    writeFileSync(inPath, JSON.stringify(cases.map((c) => ({ ...c, globalStd: c.std === 'global' }))));
    const run = spawnSync(PYTHON, ['reference/advantage.py', inPath, outPath], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`advantage.py failed: ${run.stderr}`);
    reference = JSON.parse(readFileSync(outPath, 'utf8'));
  }, 60_000);

  for (const [k, c] of cases.entries()) {
    it(c.name, () => {
      const ours = optimalityProbability(c.rewards, c.groups, { advClipMax: c.advClipMax, std: c.std, eps: c.eps });
      const ref = reference[k] as { advantages: number[]; r: number[] };
      expect(ours.r.length).toBe(c.rewards.length);
      for (let i = 0; i < c.rewards.length; i++) {
        const a = ref.advantages[i] as number;
        expect(Math.abs((ours.advantages[i] as number) - a), `advantage ${i}`).toBeLessThanOrEqual(
          1e-6 * Math.max(1, Math.abs(a)),
        );
        expect(Math.abs((ours.r[i] as number) - (ref.r[i] as number)), `r ${i}`).toBeLessThanOrEqual(1e-7);
      }
    });
  }
});

describe('optimalityProbability', () => {
  it('gives r = 0.6 one global std above the group mean, 0.5 at the mean, 0 and 1 when clipped', () => {
    // Global mean 0 and population std 1; both group means are 0.
    const rewards = [-1, 1, -1, 1, 0];
    const groups = ['a', 'a', 'b', 'b', 'c'];
    const { r, advantages } = optimalityProbability(rewards, groups);
    const std = Math.sqrt(4 / 5);
    expect(advantages[1]).toBeCloseTo(1 / (std + 1e-4), 6);
    expect(r[1]).toBeCloseTo(0.5 + 0.1 / (std + 1e-4), 6);
    expect(r[0]).toBeCloseTo(0.5 - 0.1 / (std + 1e-4), 6);
    expect(r[4]).toBe(0.5);
    const unit = optimalityProbability([-1, 1, -1, 1], groups.slice(0, 4));
    expect(unit.r[1]).toBeCloseTo(0.6, 4);
    const clipped = optimalityProbability([-1, 1, -1, 1], groups.slice(0, 4), { advClipMax: 0.5 });
    expect(Array.from(clipped.r)).toEqual([0, 1, 0, 1]);
    expect(clipped.advantages[1]).toBeCloseTo(1 / 1.0001, 6);
  });
  it('uses defaults advClipMax 5, global std, eps 1e-4', () => {
    const rewards = [0, 1, 0, 3];
    const groups = [1, 1, 2, 2];
    const mean = 1;
    const std = Math.sqrt(rewards.reduce((s, v) => s + (v - mean) ** 2, 0) / 4);
    const { r, advantages } = optimalityProbability(rewards, groups);
    expect(advantages[3]).toBeCloseTo(1.5 / (std + 1e-4), 6);
    expect(r[3]).toBeCloseTo(1.5 / (std + 1e-4) / 10 + 0.5, 6);
  });
  it('treats the number 1 and the string "1" as different groups', () => {
    const { advantages } = optimalityProbability([0, 2], [1, '1']);
    expect(Array.from(advantages)).toEqual([0, 0]);
  });
  it('accepts typed arrays', () => {
    const { r } = optimalityProbability(Float32Array.from([1, 3]), Int32Array.from([7, 7]));
    expect(r[0]).toBeLessThan(0.5);
    expect(r[1]).toBeGreaterThan(0.5);
  });
  it('rejects non-finite rewards and length mismatches with RangeError naming the index', () => {
    expect(() => optimalityProbability([1, 2, Number.NaN], [0, 0, 0])).toThrow(/rewards\[2\]/);
    expect(() => optimalityProbability([1, Number.POSITIVE_INFINITY], [0, 0])).toThrow(RangeError);
    expect(() => optimalityProbability([1, Number.NEGATIVE_INFINITY], [0, 0])).toThrow(/rewards\[1\]/);
    expect(() => optimalityProbability([1, 2, 3], [0, 0])).toThrow(RangeError);
    expect(() => optimalityProbability([1, 2, 3], [0, 0])).toThrow(/groupIds has 2 entries for 3 rewards/);
  });
  it('rejects bad group ids and options', () => {
    expect(() => optimalityProbability([1, 2], [0, null as unknown as number])).toThrow(/groupIds\[1\]/);
    expect(() => optimalityProbability([1], [0], { clip: 5 } as never)).toThrow(/unknown option 'clip'/);
    expect(() => optimalityProbability([1], [0], { std: 'prompt' as never })).toThrow(RangeError);
    expect(() => optimalityProbability([1], [0], { advClipMax: 0 })).toThrow(/advClipMax/);
    expect(() => optimalityProbability([1], [0], { eps: -1 })).toThrow(RangeError);
  });
});
