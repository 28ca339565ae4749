// ONNX export of a VelocityNet (docs/onnx.md): the forward of docs/network.md (MLP) or docs/dit.md (DiT) as an ONNX
// graph, opset 17, with the network's parameters (LoRA adapters folded in) as initializers. Inputs x (B, D) float32,
// t (B) float32, cond (B, L) int32 with a symbolic batch axis; output v (B, D).
import { CheckpointError } from '../core/errors.js';
import { writeFileAtomic } from '../core/files.js';
import { type ParamSetName, packageVersion } from '../core/native.js';
import type { DitConfig, NetConfig } from '../options/net-config.js';
import { objectOption, rejectUnknown } from '../options/schema.js';
import type { VelocityNet } from './net.js';
import { encodeModel, OnnxGraph, type OnnxValue } from './onnx-graph.js';

/** The default-domain opset of the exported graphs (LayerNormalization needs 17). */
export const ONNX_OPSET = 17;
// IR version 8 is the first that opset 17 may be declared with.
const ONNX_IR_VERSION = 8;

/** Options of exportOnnx. */
export interface ExportOnnxOptions {
  /** The parameter set to export (default 'theta'; a DiffusionNFT trainer adds 'old', 'ref', 'ema'). */
  params?: ParamSetName;
  /** More metadata properties (keys starting with 'dnft.' are reserved). */
  metadata?: Record<string, string>;
}

/** The network's parameters by name, with the parameter set's LoRA adapter folded into its base weights. */
function foldedParameters(net: VelocityNet, set: ParamSetName): Map<string, Float32Array> {
  const lora = net.lora;
  const flat = new Float32Array(net.paramCount);
  // With adapters the base is frozen: its one copy is 'theta', and the sets are adapter sets.
  net.model.getParams(flat, lora === null ? set : 'theta');
  const byName = new Map<string, Float32Array>();
  for (const p of net.params) byName.set(p.name, flat.subarray(p.offset, p.offset + p.size));
  if (lora === null) return byName;
  const adapter = new Float32Array(lora.paramCount);
  net.model.getAdapter(adapter, set);
  const scale = lora.alpha / lora.rank;
  for (let i = 0; i < lora.params.length; i += 2) {
    const a = lora.params[i],
      b = lora.params[i + 1];
    if (a === undefined || b === undefined) throw new RangeError('LoRA layout: an adapter lacks its B matrix');
    const stem = a.name.slice(0, -'.lora_A.weight'.length);
    const weight = byName.get(`${stem}.weight`);
    if (weight === undefined) throw new RangeError(`LoRA layout: no base weight for ${a.name}`);
    const [r = 0, k = 0] = a.shape;
    const n = b.shape[0] ?? 0;
    const A = adapter.subarray(a.offset, a.offset + a.size),
      B = adapter.subarray(b.offset, b.offset + b.size);
    // W (n, k) ← W + (alpha/rank)·B·A, as mergeLora does, summed in double.
    for (let row = 0; row < n; row++) {
      for (let col = 0; col < k; col++) {
        let sum = 0;
        for (let j = 0; j < r; j++) sum += (B[row * r + j] as number) * (A[j * k + col] as number);
        weight[row * k + col] = (weight[row * k + col] as number) + scale * sum;
      }
    }
  }
  return byName;
}

// float32 arithmetic of the native time features (native/core/math/time_features.h): f_k = 10000^(−k/half).
function timeFrequencies(half: number): Float32Array {
  const f = Math.fround;
  const log = f(Math.log(10000));
  return Float32Array.from({ length: half }, (_, k) => f(Math.exp(f(f(-log * k) / half))));
}

// The 2-D sin-cos position embedding of docs/dit.md, (T, W), computed in double and rounded to float32.
function positionEmbedding(c: DitConfig): Float32Array {
  const grid = c.imageSize / c.patch,
    q = c.width / 4;
  const pos = new Float32Array(grid * grid * c.width);
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const row = (gy * grid + gx) * c.width;
      for (let k = 0; k < q; k++) {
        const omega = 10000 ** (-k / q);
        pos[row + k] = Math.sin(gx * omega);
        pos[row + q + k] = Math.cos(gx * omega);
        pos[row + 2 * q + k] = Math.sin(gy * omega);
        pos[row + 3 * q + k] = Math.cos(gy * omega);
      }
    }
  }
  return pos;
}

/** The ops both networks are made of, over one graph and one set of parameters. */
class NetGraph {
  readonly g = new OnnxGraph();
  readonly #params: Map<string, Float32Array>;
  readonly #shapes: Map<string, readonly number[]>;
  readonly #ones = new Map<number, string>();
  readonly #scalars = new Map<number, string>();

  constructor(net: VelocityNet, params: Map<string, Float32Array>) {
    this.#params = params;
    this.#shapes = new Map(net.params.map((p) => [p.name, p.shape]));
  }

  #param(name: string): { values: Float32Array; shape: readonly number[] } {
    const values = this.#params.get(name),
      shape = this.#shapes.get(name);
    if (values === undefined || shape === undefined) throw new RangeError(`ONNX export: no parameter ${name}`);
    return { values, shape };
  }

  scalar(value: number): string {
    let name = this.#scalars.get(value);
    if (name === undefined) {
      name = this.g.constant('scalar', [], [value]);
      this.#scalars.set(value, name);
    }
    return name;
  }

  /** `module`'s nn.Linear over the last axis: x·Wᵀ + b, the weight stored transposed (in, out). */
  linear(x: string, module: string): string {
    const { values: w, shape } = this.#param(`${module}.weight`);
    const [n = 0, k = 0] = shape;
    const wt = new Float32Array(n * k);
    for (let row = 0; row < n; row++) for (let col = 0; col < k; col++) wt[col * n + row] = w[row * k + col] as number;
    const weight = this.g.floats(`${module}.weight`, [k, n], wt);
    const bias = this.g.floats(`${module}.bias`, [n], this.#param(`${module}.bias`).values);
    return this.g.node('Add', [this.g.node('MatMul', [x, weight]), bias]);
  }

  silu(x: string): string {
    return this.g.node('Mul', [x, this.g.node('Sigmoid', [x])]);
  }

  /** gelu(z) = z/2·(1 + tanh(√(2/π)·(z + 0.044715 z³))), spelled out (ONNX's Gelu needs opset 20). */
  gelu(z: string): string {
    const g = this.g;
    const cube = g.node('Mul', [g.node('Mul', [z, z]), z]);
    const inner = g.node('Add', [z, g.node('Mul', [cube, this.scalar(0.044715)])]);
    const th = g.node('Tanh', [g.node('Mul', [inner, this.scalar(Math.sqrt(2 / Math.PI))])]);
    return g.node('Mul', [g.node('Mul', [z, this.scalar(0.5)]), g.node('Add', [th, this.scalar(1)])]);
  }

  /** Layer norm over the last axis of width `width`, without affine parameters, eps 1e-6. */
  layerNorm(x: string, width: number): string {
    let ones = this.#ones.get(width);
    if (ones === undefined) {
      ones = this.g.constant('ones', [width], new Float32Array(width).fill(1));
      this.#ones.set(width, ones);
    }
    return this.g.node('LayerNormalization', [x, ones], { axis: -1, epsilon: { float: 1e-6 } });
  }

  /** adaLN's n·(1 + scale) + shift. */
  modulate(n: string, scale: string, shift: string): string {
    return this.g.node('Add', [this.g.node('Mul', [n, this.g.node('Add', [scale, this.scalar(1)])]), shift]);
  }

  /** Splits the last axis into `parts` equal parts. */
  split(x: string, width: number, parts: number): string[] {
    const sizes = this.g.int64s('split', new Array(parts).fill(width));
    return this.g.nodes('Split', [x, sizes], { axis: -1 }, parts);
  }

  reshape(x: string, shape: readonly number[]): string {
    return this.g.node('Reshape', [x, this.g.int64s('shape', shape)]);
  }

  /** se = silu(time_mlp(features(t)) + Σ_l cond_embed.weight[l, cond[:, l]]), (B, W): both networks' embedding. */
  embedding(c: NetConfig, t: string, cond: string): string {
    const g = this.g;
    const half = c.timeFeatures / 2;
    const scaled = g.node('Mul', [g.node('Unsqueeze', [t, g.int64s('axes', [1])]), this.scalar(1000)]);
    const arg = g.node('Mul', [scaled, g.constant('time_freq', [half], timeFrequencies(half))]);
    const tf = g.node('Concat', [g.node('Cos', [arg]), g.node('Sin', [arg])], { axis: 1 });
    const te = this.linear(this.silu(this.linear(tf, 'time_mlp.fc1')), 'time_mlp.fc2');
    // One table per slot: row cond[b, l] of table l is row l·V + cond[b, l] of the (L·V, W) matrix.
    const { values: table } = this.#param('cond_embed.weight');
    const rows = g.floats('cond_embed.weight', [c.condSlots * c.vocabSize, c.width], table);
    const offsets = g.int32s(
      'slot_offset',
      [c.condSlots],
      Array.from({ length: c.condSlots }, (_, l) => l * c.vocabSize),
    );
    const gathered = g.node('Gather', [rows, g.node('Add', [cond, offsets])], { axis: 0 });
    const ce = g.node('ReduceSum', [gathered, g.int64s('axes', [1])], { keepdims: 0 });
    return this.silu(g.node('Add', [te, ce]));
  }
}

function mlpGraph(net: VelocityNet, params: Map<string, Float32Array>): OnnxGraph {
  const c = net.config;
  const n = new NetGraph(net, params);
  const se = n.embedding(c, 't', 'cond');
  let h = n.linear('x', 'input_proj');
  for (let i = 0; i < c.depth; i++) {
    const [scale = '', shift = ''] = n.split(n.linear(se, `blocks.${i}.ada`), c.width, 2);
    const u = n.linear(n.modulate(n.layerNorm(h, c.width), scale, shift), `blocks.${i}.fc1`);
    h = n.g.node('Add', [h, n.linear(n.silu(u), `blocks.${i}.fc2`)]);
  }
  const out = n.linear(n.layerNorm(h, c.width), 'output_proj');
  n.g.node('Identity', [out], {}, 'v');
  return n.g;
}

function ditGraph(net: VelocityNet, params: Map<string, Float32Array>): OnnxGraph {
  const c = net.config as DitConfig;
  const n = new NetGraph(net, params);
  const g = n.g;
  const W = c.width,
    H = c.heads,
    d = W / H,
    p = c.patch,
    S = c.imageSize,
    C = c.channels,
    G = S / p;
  const T = G * G,
    P = p * p * c.channels;
  const se = n.embedding(c, 't', 'cond');
  // (B, 1, W) rows of the modulation, broadcast over the tokens.
  const perToken = (x: string) => g.node('Unsqueeze', [x, g.int64s('axes', [1])]);
  // patchify: (B, D) as (B, gy, py, gx, px, C) → (B, gy, gx, py, px, C) → (B, T, P).
  const grid = g.node('Transpose', [n.reshape('x', [0, G, p, G, p, C])], { perm: [0, 1, 3, 2, 4, 5] });
  let h = g.node('Add', [
    n.linear(n.reshape(grid, [0, T, P]), 'patch_embed'),
    g.constant('pos', [T, W], positionEmbedding(c)),
  ]);
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    const [s1 = '', b1 = '', g1 = '', s2 = '', b2 = '', g2 = ''] = n.split(perToken(n.linear(se, `${b}.ada`)), W, 6);
    const qkv = n.linear(n.modulate(n.layerNorm(h, W), s1, b1), `${b}.attn.qkv`);
    const [q = '', k = '', v = ''] = n.split(qkv, W, 3);
    // (B, T, W) → (B, H, T, d); keys as (B, H, d, T).
    const heads = (x: string, perm: number[]) => g.node('Transpose', [n.reshape(x, [0, 0, H, d])], { perm });
    const logits = g.node('Mul', [
      g.node('MatMul', [heads(q, [0, 2, 1, 3]), heads(k, [0, 2, 3, 1])]),
      n.scalar(Math.fround(1 / Math.sqrt(d))),
    ]);
    const attended = g.node('MatMul', [g.node('Softmax', [logits], { axis: -1 }), heads(v, [0, 2, 1, 3])]);
    const merged = n.reshape(g.node('Transpose', [attended], { perm: [0, 2, 1, 3] }), [0, 0, W]);
    h = g.node('Add', [h, g.node('Mul', [g1, n.linear(merged, `${b}.attn.proj`)])]);
    const m = n.linear(n.gelu(n.linear(n.modulate(n.layerNorm(h, W), s2, b2), `${b}.mlp.fc1`)), `${b}.mlp.fc2`);
    h = g.node('Add', [h, g.node('Mul', [g2, m])]);
  }
  const [scale = '', shift = ''] = n.split(perToken(n.linear(se, 'final.ada')), W, 2);
  const out = n.linear(n.modulate(n.layerNorm(h, W), scale, shift), 'final.linear');
  // unpatchify: (B, T, P) as (B, gy, gx, py, px, C) → (B, gy, py, gx, px, C) → (B, D).
  const image = g.node('Transpose', [n.reshape(out, [0, G, G, p, p, C])], { perm: [0, 1, 3, 2, 4, 5] });
  g.node('Reshape', [image, g.int64s('shape', [0, c.dataDim])], {}, 'v');
  return g;
}

/** The metadata properties every export carries: the config, the step, the exported set, the folded adapter. */
function exportMetadata(net: VelocityNet, set: ParamSetName, extra: Record<string, string>): Record<string, string> {
  const lora = net.lora;
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(extra)) {
    if (key.startsWith('dnft.')) throw new RangeError(`exportOnnx: metadata key '${key}' is reserved`);
    if (typeof value !== 'string') throw new TypeError(`exportOnnx: metadata '${key}' must be a string`);
    metadata[key] = value;
  }
  metadata['dnft.arch'] = net.config.arch;
  metadata['dnft.config'] = JSON.stringify(net.config);
  metadata['dnft.step'] = String(net.step);
  metadata['dnft.params'] = set;
  if (lora !== null) {
    const { rank, alpha, targets, init } = lora;
    metadata['dnft.lora'] = JSON.stringify({ rank, alpha, targets, init, folded: true });
  }
  return metadata;
}

/** The exported model's protobuf bytes (what exportOnnx writes). */
export function onnxBytes(net: VelocityNet, options: ExportOnnxOptions = {}): Uint8Array {
  const opts = objectOption('exportOnnx options', options);
  rejectUnknown('exportOnnx options', opts, ['params', 'metadata']);
  const set = (opts.params ?? 'theta') as ParamSetName;
  net.assertIdle('exportOnnx');
  net.checkParamSet(set);
  const extra = objectOption('exportOnnx options.metadata', opts.metadata ?? {}) as Record<string, string>;
  const metadata = exportMetadata(net, set, extra);
  const c = net.config;
  const graph =
    c.arch === 'dit' ? ditGraph(net, foldedParameters(net, set)) : mlpGraph(net, foldedParameters(net, set));
  const inputs: OnnxValue[] = [
    { name: 'x', type: 'float32', dims: ['batch', c.dataDim] },
    { name: 't', type: 'float32', dims: ['batch'] },
    { name: 'cond', type: 'int32', dims: ['batch', c.condSlots] },
  ];
  const outputs: OnnxValue[] = [{ name: 'v', type: 'float32', dims: ['batch', c.dataDim] }];
  return encodeModel(graph.proto(`diffusion_nft_${c.arch}`, inputs, outputs), {
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    producerName: 'diffusion-nft',
    producerVersion: packageVersion(),
    metadata,
  });
}

/**
 * Writes the network as an ONNX model (docs/onnx.md): opset 17, inputs `x` (B, D) float32, `t` (B) float32,
 * `cond` (B, L) int32 with a symbolic batch axis, output `v` (B, D). A network with LoRA adapters is exported with
 * them folded into its weights (the network itself is unchanged). The config, step, exported parameter set and
 * folded adapter are metadata properties `dnft.*`. The file is written atomically.
 */
export async function exportOnnx(net: VelocityNet, path: string, options: ExportOnnxOptions = {}): Promise<void> {
  const bytes = onnxBytes(net, options);
  try {
    await writeFileAtomic(path, bytes);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CheckpointError(`cannot write ONNX model ${path} (${reason})`, { cause: error });
  }
}
