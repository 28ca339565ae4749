// Device selection: what backendInfo says about CUDA (and why not), the CPU default in FP32, and the checks of the
// device and precision options.
import { describe, expect, it } from 'vitest';
import { BackendError, backendInfo, FlowMatchingTrainer, VelocityNet } from '../lib/index.js';
import { GPU_TOLERANCE, randomBatch, randomizedNet, relativeError, TEST_DEVICE } from './helpers.js';

const info = backendInfo();
const small = { dataDim: 5, width: 24, depth: 2 };

describe('device selection', () => {
  it('reports whether CUDA is usable, with the reason when it is not', () => {
    expect(typeof info.cuda).toBe('boolean');
    if (!info.cuda) {
      expect(info.cudaUnavailableReason).toMatch(/\S/);
      expect(info.device).toBeUndefined();
    } else {
      expect(info.device).toMatch(/\S/);
    }
  });

  // The device suites' GPU runs (DNFT_TEST_DEVICE=cuda) must not pass by running on the CPU.
  it.runIf(TEST_DEVICE === 'cuda')('has the GPU that DNFT_TEST_DEVICE=cuda asks for', () => {
    expect(info.cuda, info.cudaUnavailableReason).toBe(true);
    expect(VelocityNet.create(small, { device: 'cuda' }).device).toBe('cuda');
  });

  it('runs on the CPU by default, in FP32', () => {
    const net = VelocityNet.create(small);
    expect(net.device).toBe('cpu');
    expect(net.precision).toBe('fp32');
  });

  it.skipIf(info.cuda)("throws a BackendError naming the reason for device 'cuda' without a GPU", () => {
    let error: unknown;
    try {
      VelocityNet.create(small, { device: 'cuda' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('DNFT_BACKEND');
    expect((error as Error).message).toContain(info.cudaUnavailableReason as string);
  });

  it("falls back to the CPU for device 'auto' without a GPU and picks the GPU with one", () => {
    const net = VelocityNet.create(small, { device: 'auto', seed: 3 });
    expect(net.device).toBe(info.cuda ? 'cuda' : 'cpu');
    // Same seed, same parameters, whichever backend initialised them (Philox on both).
    expect(net.getParameters()).toEqual(VelocityNet.create(small, { seed: 3 }).getParameters());
  });

  it('validates device and precision', () => {
    expect(() => VelocityNet.create(small, { device: 'gpu' as never })).toThrow(RangeError);
    expect(() => VelocityNet.create(small, { precision: 'bf16' as never })).toThrow(/'tf32' or 'fp32'/);
    expect(VelocityNet.create(small, { device: 'auto', precision: 'fp32' }).precision).toBe('fp32');
  });
});

describe.skipIf(!info.cuda)('CUDA backend against the CPU', () => {
  for (const precision of ['fp32', 'tf32'] as const) {
    // A forward pass: the GEMM's bound (docs/gpu.md), and for whole steps GPU_TOLERANCE.
    const tol = precision === 'fp32' ? 1e-5 : 3e-3;

    it(`[${precision}] computes the same velocity`, async () => {
      const cpu = randomizedNet(small, 4);
      const gpu = VelocityNet.create(small, { device: 'cuda', precision });
      gpu.setParameters(cpu.getParameters());
      expect(gpu.device).toBe('cuda');
      const { x, t, cond } = randomBatch(cpu, 37, 5);
      const a = await cpu.velocity(x, t, cond);
      const b = await gpu.velocity(x, t, cond);
      expect(relativeError(b.storage, a.storage)).toBeLessThan(tol);
    });

    it(`[${precision}] takes the same flow-matching steps`, async () => {
      const cpu = VelocityNet.create(small, { seed: 6 });
      const gpu = VelocityNet.create(small, { seed: 6, device: 'cuda', precision });
      const { x, cond } = randomBatch(cpu, 33, 7);
      for (const net of [cpu, gpu]) {
        const trainer = new FlowMatchingTrainer(net, { seed: 8 });
        for (let i = 0; i < 3; i++) await trainer.step({ x0: x, cond });
      }
      expect(relativeError(gpu.getParameters(), cpu.getParameters())).toBeLessThan(GPU_TOLERANCE[precision]);
    });
  }
});
