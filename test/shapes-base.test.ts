// The base model shipped in the package (models/shapes-base.safetensors): it loads, its scores are the ones the
// README states, and a short DiffusionNFT run from it raises the shapes reward.
import { describe, expect, it } from 'vitest';
import { DiffusionNFT, loadCheckpoint, tasks } from '../lib/index.js';
import { SHAPES_BASE } from '../lib/jobs/demo-shapes.js';
import { evaluateShapes, findPrompt } from '../lib/jobs/shapes.js';

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

  it('a short DiffusionNFT run from it raises the shapes reward (16 epochs of 64 samples)', async () => {
    // Two prompts the base gets right about 3 times in 8 (binary rewards, the largest spread in a group, so the most
    // signal per sample); scored on 64 fresh samples of each with the rollout solver and fixed noise, before and
    // after. Seeds 1, 2 and 3 took 0.375 to 0.52, 0.58 and 0.46 on the developers' machine; lr 3e-4 instead of 1e-4
    // collapsed it to 0.15 (full fine-tuning of every weight, where the codes' 3e-4 is for LoRA adapters).
    const { net } = await loadCheckpoint(SHAPES_BASE);
    const prompts = [findPrompt('a red circle'), findPrompt('a yellow circle')];
    const score = () => evaluateShapes(net, { prompts, samplesPerPrompt: 64, solver: 'dpm2', steps: 10, seed: 99 });
    const before = await score();
    const nft = new DiffusionNFT(net, {
      prompts,
      rewards: { name: 'shapes', fn: tasks.shapes.reward },
      groups: 2,
      groupSize: 32,
      timeFraction: 0.3,
      lr: 1e-4,
      seed: 1,
    });
    for (let epoch = 0; epoch < 16; epoch++) await nft.epoch();
    const after = await score();
    expect(after.reward).toBeGreaterThan(before.reward + 0.05);
    net.dispose();
  }, 300_000);
});
