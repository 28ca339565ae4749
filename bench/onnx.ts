// Rows B3-ORT and B3-ORT-D (bench/NOTES.md, docs/onnx.md): the 10-step dpm2 rollout with our native sampler beside
// onnxruntime-node running the exported network under our TypeScript solver (lib/sampling/onnx-model.ts), both on
// the same threads in the same process, alternating rollouts. The peer's time is split into ONNX Runtime's
// session.run and the rest (the solver's float32 updates in JavaScript, the tensors' copies).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { exportOnnx, type OnnxSession, onnxModel, sample, Tensor, type VelocityNet } from '../lib/index.js';

/** One rollout size's medians: ours, the peer's, and the peer's time inside session.run; milliseconds. */
export interface OrtRollout {
  ours: number;
  peer: number;
  peerRun: number;
  /** Our native forward of all the samples once (a tenth of the rollout's network time). */
  oursForward: number;
  ortVersion: string;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Times `rounds` alternating rollouts of `batch` samples (after one untimed each) of `net`, ours and ORT's. */
export async function ortRollout(
  net: VelocityNet,
  batch: number,
  threads: number,
  rounds: number,
): Promise<OrtRollout> {
  const dir = mkdtempSync(join(tmpdir(), 'dnft-bench-onnx-'));
  try {
    const file = join(dir, 'net.onnx');
    await exportOnnx(net, file);
    const session = await ort.InferenceSession.create(file, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    let inRun = 0;
    const timed: OnnxSession = {
      run: async (feeds) => {
        const start = performance.now();
        const out = await session.run(feeds as ort.InferenceSession.FeedsType);
        inRun += performance.now() - start;
        return out;
      },
    };
    const model = onnxModel(timed, ort);
    const { condSlots, vocabSize, dataDim } = net.config;
    const cond = Tensor.fromInt32(
      Int32Array.from({ length: batch * condSlots }, (_, i) => i % vocabSize),
      [batch, condSlots],
    );
    const noise = Tensor.randn([batch, dataDim], { seed: 7 });
    const options = { cond, noise, solver: 'dpm2' as const, steps: 10, chunk: batch };
    const ours: number[] = [],
      peer: number[] = [],
      peerRun: number[] = [];
    for (let round = -1; round < rounds; round++) {
      let start = performance.now();
      await sample(net, options);
      const oursMs = performance.now() - start;
      inRun = 0;
      start = performance.now();
      await sample(model, options);
      const peerMs = performance.now() - start;
      if (round < 0) continue;
      ours.push(oursMs);
      peer.push(peerMs);
      peerRun.push(inRun);
    }
    const t = Tensor.rand([batch], { seed: 8 });
    const forwards: number[] = [];
    for (let i = 0; i < Math.max(1, rounds); i++) {
      const start = performance.now();
      await net.velocity(noise, t, cond);
      forwards.push(performance.now() - start);
    }
    await session.release();
    return {
      ours: median(ours),
      peer: median(peer),
      peerRun: median(peerRun),
      oursForward: median(forwards),
      ortVersion: ort.env.versions.node ?? ort.env.versions.common,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
