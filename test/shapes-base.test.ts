// The base model shipped in the package (models/shapes-base.safetensors): it loads and its scores are the ones the
// README states.
import { describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../lib/index.js';
import { SHAPES_BASE } from '../lib/jobs/demo-shapes.js';
import { evaluateShapes } from '../lib/jobs/shapes.js';

describe('the shipped shapes base model', () => {
  it('loads as config D and scores as the README states (test prompts, 4 samples each, seed 12345)', async () => {
    const { net, metadata } = await loadCheckpoint(SHAPES_BASE);
    expect(net.config.arch).toBe('dit');
    expect(metadata['shapes.command']).toMatch(/pretrain/);
    const plain = await evaluateShapes(net, { samplesPerPrompt: 4 });
    const guided = await evaluateShapes(net, { samplesPerPrompt: 4, cfgScale: 3 });
    // The README's numbers (4 samples per test prompt): strict 0.058 without CFG and 0.058 with CFG 3, reward
    // 0.218 and 0.188; within ±0.05 for the GEMM kernel another machine may pick.
    expect(Math.abs(plain.overall - 0.058)).toBeLessThan(0.05);
    expect(Math.abs(guided.overall - 0.058)).toBeLessThan(0.05);
    expect(Math.abs(plain.reward - 0.218)).toBeLessThan(0.05);
    net.dispose();
  }, 300_000);
});
