import { type NetConfig, Tensor, VelocityNet } from '../lib/index.js';

/** A small network whose every parameter is non-zero (adaLN-Zero and the output layer start at 0). */
export function randomizedNet(config: Partial<NetConfig>, seed = 1): VelocityNet {
  const net = VelocityNet.create(config, { seed });
  const noise = Tensor.randn([net.paramCount], { seed: seed + 1000, stream: 40 }).storage;
  const flat = net.getParameters();
  for (let i = 0; i < flat.length; i++) flat[i] = (flat[i] as number) + 0.2 * (noise[i] as number);
  net.setParameters(flat);
  return net;
}

/** A random batch for `net`: x (B, D), t (B) in [0, 1], tokens (B, L) in [0, V). */
export function randomBatch(net: VelocityNet, batch: number, seed: number) {
  const { dataDim, condSlots, vocabSize } = net.config;
  const x = Tensor.randn([batch, dataDim], { seed, stream: 50 });
  const t = Tensor.rand([batch], { seed, stream: 51 });
  const u = Tensor.rand([batch * condSlots], { seed, stream: 52 }).storage;
  const cond = Tensor.fromInt32(
    Int32Array.from(u, (v) => Math.floor(v * vocabSize)),
    [batch, condSlots],
  );
  return { x, t, cond };
}

/** ‖a − b‖ / ‖b‖ */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < b.length; i++) {
    diff += ((a[i] as number) - (b[i] as number)) ** 2;
    norm += (b[i] as number) ** 2;
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}
