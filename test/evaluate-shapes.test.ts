// Scoring a shapes model: an evaluation drawn in parts (to show its progress) gives the samples of a single call,
// and its standard errors are those of its samples.
import { describe, expect, it } from 'vitest';
import { sample, Tensor, tasks, VelocityNet } from '../lib/index.js';
import { evaluateShapes, sampleGrid } from '../lib/jobs/shapes/evaluate.js';
import { SHAPES_GUIDANCE } from '../lib/jobs/shapes/guidance.js';

const s = tasks.shapes;

describe('evaluateShapes', () => {
  it('draws its samples in parts, reporting each, and scores what one call would sample', async () => {
    const net = VelocityNet.create({ preset: 'M' }, { seed: 3 });
    const prompts = s.TEST_PROMPTS.slice(0, 7);
    for (const guidance of [{}, SHAPES_GUIDANCE]) {
      const reported: [number, number][] = [];
      const options = { prompts, samplesPerPrompt: 20, steps: 3, seed: 5, ...guidance };
      const parts = await evaluateShapes(net, options, (done, total) => reported.push([done, total]));
      const rows = prompts.flatMap((p) => Array.from({ length: 20 }, () => p));
      const cond = Tensor.fromInt32(Int32Array.from(rows.flatMap((p) => [...p.tokens])), [rows.length, s.SLOTS]);
      const { x } = await sample(net, { cond, solver: 'euler', steps: 3, seed: 5, ...guidance });
      expect(parts).toEqual(s.evaluate(x, rows));
      // 140 samples in parts of 64 (the smallest part): 0 first, then after each part, ending at the total.
      expect(reported).toEqual([0, 64, 128, 140].map((done) => [done, 140]));
    }
    const grid: number[] = [];
    await sampleGrid(net, prompts.slice(0, 2), { perPrompt: 40, steps: 2 }, (done) => grid.push(done));
    expect(grid).toEqual([0, 64, 80]);
    net.dispose();
  });

  it('reports the standard errors of the strict score and the reward', () => {
    // One prompt, four samples: two clean renders (strict) and two blank images (not).
    const prompt = s.TEST_PROMPTS.find((p) => p.category === 'single') as tasks.shapes.ShapesPrompt;
    const rows = [prompt, prompt, prompt, prompt];
    const data = new Float32Array(4 * s.DATA_DIM);
    data.set(s.renderPrompt(prompt, 0, 0), 0);
    data.set(s.renderPrompt(prompt, 0, 1), s.DATA_DIM);
    const x = Tensor.from(data, [4, s.DATA_DIM]);
    const e = s.evaluate(x, rows);
    expect(e.overall).toBe(0.5);
    // A binomial rate of 1/2 over 4 samples: √(½·½/4).
    expect(e.standardError.strict).toBeCloseTo(0.25, 12);
    const rewards = s.reward(x, rows);
    const mean = rewards.reduce((a, b) => a + b, 0) / 4;
    const std = Math.sqrt(rewards.reduce((a, r) => a + (r - mean) ** 2, 0) / 3);
    expect(e.standardError.reward).toBeCloseTo(std / 2, 12);
    expect(e.standardError.reward).toBeGreaterThan(0);
  });
});
