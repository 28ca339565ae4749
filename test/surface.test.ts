// What a user can reach without crashing the process: the native model after release(), and what device 'auto'
// says when it falls back to the CPU.
import { describe, expect, it } from 'vitest';
import { backendInfo, DisposedError, FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from '../lib/index.js';

const small = { dataDim: 3, width: 16, depth: 1 };
const batch = (net: VelocityNet) => ({
  x: Tensor.zeros([2, net.config.dataDim]),
  cond: Tensor.fromInt32(Int32Array.from([1, 2]), [2, 1]),
});

describe('a released native model', () => {
  it('throws DisposedError from every public path instead of crashing', async () => {
    const net = VelocityNet.create(small, { seed: 1 });
    const { x, cond } = batch(net);
    net.model.release();
    expect(net.disposed).toBe(true);
    await expect(net.velocity(x, 0.5, cond)).rejects.toBeInstanceOf(DisposedError);
    expect(() => net.getParameters()).toThrow(DisposedError);
    expect(() => net.setParameters(new Float32Array(1))).toThrow(DisposedError);
    expect(() => net.paramCount).toThrow(DisposedError);
    await expect(sample(net, { cond, steps: 2 })).rejects.toBeInstanceOf(DisposedError);
    const trainer = new FlowMatchingTrainer(VelocityNet.create(tasks.toy2d.config), { lr: 1e-3 });
    trainer.net.model.release();
    const data = tasks.toy2d.batch(4, 1, 0);
    await expect(trainer.step(data)).rejects.toBeInstanceOf(DisposedError);
    net.dispose();
    net.dispose();
  });

  it('throws code DNFT_DISPOSED when its own methods are called directly', () => {
    const net = VelocityNet.create(small, { seed: 1 });
    const model = net.model;
    const { x, cond } = batch(net);
    model.release();
    model.release();
    expect(model.released()).toBe(true);
    const calls = [
      () => model.paramCount(),
      () => model.getParams(new Float32Array(1)),
      () => model.copyParams('old', 'theta'),
      () => model.velocity(x.storage, new Float32Array(2), cond.storage, 2),
      // The options are never read: the released handle is refused first.
      () => model.nftStep(x.storage, cond.storage, new Float32Array(2), 2, {} as never),
    ];
    for (const call of calls) expect(call).toThrow(expect.objectContaining({ code: 'DNFT_DISPOSED' }));
  });

  it('finishes a call in flight when released during it, then refuses the next', async () => {
    const net = VelocityNet.create({ dataDim: 64, width: 256, depth: 4 }, { seed: 2 });
    const x = Tensor.randn([512, 64], { seed: 1, stream: 16 });
    const cond = Tensor.fromInt32(new Int32Array(512).fill(1), [512, 1]);
    const expected = await net.velocity(x, 0.3, cond);
    // A call queued on the network but not yet started is refused...
    const queued = net.velocity(x, 0.3, cond);
    // ...while one the native side has started runs to the end on the memory it holds.
    const model = net.model;
    const started = model.velocity(x.storage, new Float32Array(512).fill(0.3), cond.storage, 512);
    model.release();
    await expect(queued).rejects.toBeInstanceOf(DisposedError);
    expect(Array.from(await started)).toEqual(Array.from(expected.storage));
    await expect(net.velocity(x, 0.3, cond)).rejects.toBeInstanceOf(DisposedError);
  });
});

describe("device 'auto' on the CPU", () => {
  it('warns once, with the reason, in a CUDA build without a usable GPU (and never in a CPU-only build)', () => {
    const info = backendInfo();
    const warnings: Error[] = [];
    const listen = (warning: Error) => warnings.push(warning);
    process.on('warning', listen);
    return new Promise<void>((resolve) => {
      VelocityNet.create(small, { device: 'auto' });
      VelocityNet.create(small, { device: 'auto' });
      // Warnings are emitted on the next tick.
      setImmediate(() => {
        process.off('warning', listen);
        const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'DNFT_CUDA_FALLBACK');
        if (info.cuda || !info.compiledWithCuda) expect(ours).toHaveLength(0);
        else {
          expect(ours).toHaveLength(1);
          expect(ours[0]?.message).toContain(info.cudaUnavailableReason as string);
        }
        resolve();
      });
    });
  });
});
