// The shapes world: GenEval's categories and the train/test split, deterministic renders, a detector that scores
// clean renders right, stays robust to a generator's noise and cannot be gamed.
import { describe, expect, it } from 'vitest';
import { Tensor, tasks } from '../lib/index.js';
import type { Colour, SceneObject } from '../lib/tasks/shapes/index.js';

const s = tasks.shapes;

// Every prompt rendered for several seeds: the detector must get all of them right.
function cleanRenders(seeds: number) {
  const list: { prompt: (typeof s.ALL_PROMPTS)[number]; image: Float32Array }[] = [];
  for (let seed = 0; seed < seeds; seed++) {
    for (const [i, prompt] of s.ALL_PROMPTS.entries()) list.push({ prompt, image: s.renderPrompt(prompt, seed, i) });
  }
  return list;
}

describe('the shapes world', () => {
  it('has GenEval’s six categories, distinct slot tokens and a train/test split with unseen compositions', () => {
    const byCategory = new Map<string, number>();
    for (const p of s.ALL_PROMPTS) byCategory.set(p.category, (byCategory.get(p.category) ?? 0) + 1);
    expect(Object.fromEntries(byCategory)).toEqual({
      single: 3,
      two: 3,
      counting: 9,
      colours: 12,
      position: 24,
      attribution: 36,
    });
    const keys = new Set(s.ALL_PROMPTS.map((p) => p.tokens.join(',')));
    expect(keys.size).toBe(s.ALL_PROMPTS.length);
    for (const p of s.ALL_PROMPTS) {
      expect(p.tokens.length).toBe(s.SLOTS);
      for (const t of p.tokens) expect(t >= 0 && t < s.VOCAB).toBe(true);
    }
    // "red triangle" is only ever asked for at test time, and "a triangle above a circle" too.
    const has = (p: (typeof s.ALL_PROMPTS)[number], colour: string, shape: string) =>
      p.objects.some((o) => o.colour === colour && o.shape === shape);
    expect(s.TRAIN_PROMPTS.some((p) => has(p, 'red', 'triangle'))).toBe(false);
    expect(s.TEST_PROMPTS.some((p) => has(p, 'red', 'triangle'))).toBe(true);
    expect(s.TRAIN_PROMPTS.some((p) => p.text === 'a triangle above a circle')).toBe(false);
    expect(s.TEST_PROMPTS.some((p) => p.text === 'a triangle above a circle')).toBe(true);
    expect(new Set(s.TEST_PROMPTS.map((p) => p.category)).size).toBe(6);
    // The same relation with the words swapped is a different condition (slot order matters).
    const left = s.ALL_PROMPTS.find((p) => p.text === 'a circle left of a square');
    const swapped = s.ALL_PROMPTS.find((p) => p.text === 'a square left of a circle');
    expect(left?.tokens).not.toEqual(swapped?.tokens);
  });

  it('renders deterministically from the seed', () => {
    const p = s.ALL_PROMPTS[40] as (typeof s.ALL_PROMPTS)[number];
    expect(Array.from(s.renderPrompt(p, 3, 7))).toEqual(Array.from(s.renderPrompt(p, 3, 7)));
    expect(Array.from(s.renderPrompt(p, 3, 8))).not.toEqual(Array.from(s.renderPrompt(p, 3, 7)));
    const a = s.batch(5, 2, 1);
    const b = s.batch(5, 2, 1);
    expect(a.x0.shape).toEqual([5, 768]);
    expect(a.cond.shape).toEqual([5, 8]);
    expect(Array.from(a.x0.storage)).toEqual(Array.from(b.x0.storage));
    for (const [i, prompt] of a.prompts.entries()) {
      expect(Array.from(a.cond.storage.subarray(8 * i, 8 * i + 8))).toEqual([...prompt.tokens]);
    }
  });

  it('detects every clean render right: strict success and full reward in every category', () => {
    const renders = cleanRenders(12);
    for (const { prompt, image } of renders) {
      const score = s.scoreDetections(prompt, s.detect(image));
      expect(score.strict, prompt.text).toBe(true);
      expect(score.reward, prompt.text).toBe(1);
    }
    const samples = Tensor.from(Float32Array.from(renders.flatMap((r) => Array.from(r.image))), [renders.length, 768]);
    const result = s.evaluate(
      samples,
      renders.map((r) => r.prompt),
    );
    expect(result.overall).toBe(1);
    expect(Object.keys(result.byCategory).length).toBe(6);
  });

  it('is robust to the noise a generator leaves', () => {
    const renders = cleanRenders(3);
    let strict = 0;
    for (const [k, { prompt, image }] of renders.entries()) {
      const noise = Tensor.randn([768], { seed: 77, offset: k * 768 }).storage;
      const noisy = image.map((v, i) => v + 0.25 * (noise[i] as number));
      if (s.scoreDetections(prompt, s.detect(noisy)).strict) strict++;
    }
    expect(strict / renders.length).toBeGreaterThan(0.97);
  });

  it('cannot be gamed: blank, noise and everything-everywhere images score near zero', () => {
    const blank = new Float32Array(768).fill(-1);
    const noise = Tensor.randn([768], { seed: 5 }).storage;
    const uniform = Tensor.rand([768], { seed: 6 }).storage.map((v) => 2 * v - 1);
    // Nine objects in a 3×3 grid: every shape, every colour.
    const crowd: SceneObject[] = [];
    s.SHAPES.forEach((shape, i) => {
      for (let j = 0; j < 3; j++) {
        crowd.push({
          shape,
          colour: s.COLOURS[(i + j) % 4] as Colour,
          size: 5,
          x: 5 * j + (j > 0 ? 1 : 0),
          y: 5 * i + (i > 0 ? 1 : 0),
        });
      }
    });
    const everything = s.render(crowd);
    for (const [name, image] of Object.entries({ blank, noise, uniform, everything })) {
      let reward = 0;
      for (const p of s.ALL_PROMPTS) {
        const score = s.scoreDetections(p, s.detect(image));
        expect(score.strict, `${name}: ${p.text}`).toBe(false);
        reward += score.reward;
      }
      expect(reward / s.ALL_PROMPTS.length, name).toBeLessThan(0.05);
    }
  });
});
