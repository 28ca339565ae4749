// The base model shipped in the package (models/shapes-base.safetensors): it loads, its scores are the ones the
// docs/science.md states, and a short DiffusionNFT run from it raises the shapes reward.
import { describe, expect, it } from 'vitest';
import { DiffusionNFT, loadCheckpoint, tasks } from '../lib/index.js';
import { SHAPES_BASE } from '../lib/jobs/demo-shapes.js';
import { evaluateShapes } from '../lib/jobs/shapes/evaluate.js';
import { SHAPES_GUIDANCE } from '../lib/jobs/shapes/guidance.js';
import { findPrompt } from '../lib/jobs/shapes/prompts.js';
import { demoFewEpochs, expectRise } from './demo-rise.js';
import { onCpu } from './helpers.js';

describe('the shipped shapes base model', () => {
  it('loads as config D and scores as docs/science.md states (test prompts, 8 samples each, seed 12345)', async () => {
    const { net, metadata } = await loadCheckpoint(SHAPES_BASE);
    expect(net.config.arch).toBe('dit');
    expect(metadata['shapes.command']).toMatch(/pretrain/);
    const plain = await evaluateShapes(net);
    const guided = await evaluateShapes(net, SHAPES_GUIDANCE);
    // The numbers of docs/science.md ("The shipped base model"): strict 0.197 without CFG and 0.269 with CFG 5 at
    // t ≤ 0.6, reward 0.383 and 0.420; within ±0.05 for the GEMM kernel another machine may pick.
    expect(Math.abs(plain.overall - 0.197)).toBeLessThan(0.05);
    expect(Math.abs(guided.overall - 0.269)).toBeLessThan(0.05);
    expect(Math.abs(plain.reward - 0.383)).toBeLessThan(0.05);
    net.dispose();
  }, 300_000);

  // Two prompts the base gets right about half the time (binary rewards, the largest spread in a group, so the most
  // signal per sample), 16 epochs of 2 × 32 samples; scored on 64 fresh samples of each with the rollout solver and
  // fixed noise, before and after. Returns the rewards and whether the base weights stayed as they were.
  async function shortRun(options: { lr: number; lora?: { rank: number; alpha: number } }) {
    const { net } = await loadCheckpoint(SHAPES_BASE);
    const prompts = [findPrompt('a red circle'), findPrompt('a yellow circle')];
    const score = () => evaluateShapes(net, { prompts, samplesPerPrompt: 64, solver: 'dpm2', steps: 10, seed: 99 });
    const before = await score();
    const base = net.getParameters();
    const nft = new DiffusionNFT(net, {
      prompts,
      rewards: { name: 'shapes', fn: tasks.shapes.reward },
      groups: 2,
      groupSize: 32,
      timeFraction: 0.3,
      seed: 1,
      ...options,
    });
    for (let epoch = 0; epoch < 16; epoch++) await nft.epoch();
    const after = await score();
    const baseKept = net.getParameters().every((v, i) => v === base[i]);
    net.dispose();
    return { before: before.reward, after: after.reward, baseKept };
  }

  it('a short DiffusionNFT run from it raises the shapes reward (16 epochs of 64 samples)', async () => {
    // Seeds 1 and 2 took 0.363 to 0.676 and 0.663 on the developers' machine (with the first, weaker base, lr 3e-4
    // instead of 1e-4 collapsed the run: full fine-tuning of every weight, where the codes' 3e-4 is for LoRA).
    const run = await shortRun({ lr: 1e-4 });
    expect(run.after).toBeGreaterThan(run.before + 0.05);
  }, 300_000);

  // The demo's method for a few epochs (test/demo-rise.ts). The same run on the GPU: test/shapes-rise-device.test.ts.
  it('a few epochs of the demo raise the shapes reward', async () => {
    await onCpu(async (at) => {
      const run = await demoFewEpochs(at);
      expectRise(run, 'the CPU');
      return { before: run.before, firstEpochReward: run.rewards[0] as number };
    });
  }, 600_000);

  it("a short DiffusionNFT run with LoRA adapters (r 32, α 64, lr 3e-4: the codes' settings) raises it too", async () => {
    // The base frozen and only the attention adapters trained.
    const run = await shortRun({ lr: 3e-4, lora: { rank: 32, alpha: 64 } });
    expect(run.baseKept).toBe(true);
    expect(run.after).toBeGreaterThan(run.before + 0.05);
  }, 300_000);
});
