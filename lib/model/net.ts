import { isFloat32Array } from 'node:util/types';
import { checkFinite, checkTensor } from '../core/checks.js';
import { BusyError, DisposedError, fromNative } from '../core/errors.js';
import { defaultGpu } from '../core/launcher.js';
import { limits, type NativeModel, native, type ParamSetName } from '../core/native.js';
import { type Device, Tensor } from '../core/tensor.js';
import { type LoraInit, type LoraOptions, loraOptions } from '../options/lora.js';
import { type NetConfig, type NetPreset, resolveNetConfig } from '../options/net-config.js';
import { checkValue, objectOption, rejectUnknown, seedOption } from '../options/schema.js';

/** The parameter sets a network may hold: θ, and a DiffusionNFT trainer's θ_old, θ_ref and EMA. */
export const PARAM_SETS: readonly ParamSetName[] = ['theta', 'old', 'ref', 'ema'];

/** One parameter tensor of the flat buffer. */
export interface ParamInfo {
  /** Name, as in docs/network.md or docs/dit.md and the PyTorch reference. */
  readonly name: string;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Position in the flat buffer, in elements. */
  readonly offset: number;
  /** Number of elements (the product of `shape`). */
  readonly size: number;
  /** Whether AdamW's weight decay applies (not to biases and embeddings). */
  readonly decay: boolean;
}

/** The adapters a network carries. */
export interface LoraInfo {
  /** Rank r of every adapter. */
  readonly rank: number;
  /** The adapters' outputs are scaled by alpha / rank. */
  readonly alpha: number;
  /** How A was initialised. */
  readonly init: LoraInit;
  /** The adapted modules inside every block. */
  readonly targets: readonly string[];
  /** The adapter tensors `<module>.lora_A.weight` (rank, in) and `<module>.lora_B.weight` (out, rank), in order. */
  readonly params: readonly ParamInfo[];
  /** Number of adapter parameters (the trainable ones). */
  readonly paramCount: number;
}

/** A backend request: a device, or 'auto' for the GPU when one is present and the CPU otherwise. */
export type DeviceRequest = Device | 'auto';

/** The arithmetic of the GPU's matrix products: TF32 tensor cores (default, ~1e-3 relative) or exact FP32. */
export type Precision = 'tf32' | 'fp32';

/** Options of VelocityNet.create. */
export interface CreateOptions {
  /** Seed of the parameter initialisation (default 0). */
  seed?: number | bigint;
  /**
   * Backend: 'cpu' (default); 'cuda' (throws a BackendError naming the reason when no usable GPU is present);
   * 'auto' (the GPU when `backendInfo().cuda`, else the CPU, which a CUDA build announces once per process with a
   * `DNFT_CUDA_FALLBACK` process warning naming the reason). `net.device` tells which one was picked.
   */
  device?: DeviceRequest;
  /** GPU matrix-product arithmetic (default 'tf32'); the CPU always computes in FP32. */
  precision?: Precision;
  /**
   * The CUDA device's index, below `backendInfo().deviceCount` (default: under an MPI launcher the process's rank
   * on its host modulo the GPUs it sees, so that each rank of a host takes its own GPU; else 0). Ignored on the CPU.
   */
  gpu?: number;
  /** Freeze the base and train LoRA adapters (docs/lora.md), as `enableLora(lora)` after creation. */
  lora?: LoraOptions;
}

let warnedCpuFallback = false;

// device 'auto' on the CPU in a CUDA build: said once per process, as a warning event with the reason.
function warnCpuFallback(): void {
  if (warnedCpuFallback) return;
  const info = native().backendInfo();
  if (!info.compiledWithCuda) return;
  warnedCpuFallback = true;
  process.emitWarning(`device 'auto' is using the CPU: ${info.cudaUnavailableReason ?? 'CUDA is not available'}`, {
    code: 'DNFT_CUDA_FALLBACK',
  });
}

// options.gpu, checked against the GPUs present; absent: defaultGpu (lib/core/launcher.ts).
function gpuOption(gpu: unknown): number {
  const count = native().backendInfo().deviceCount;
  if (gpu === undefined) return defaultGpu(count);
  checkValue('options.gpu', { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER }, gpu);
  if (count > 0 && (gpu as number) >= count) {
    throw new RangeError(`options.gpu must be below the ${count} CUDA device(s) present, got ${String(gpu)}`);
  }
  return gpu as number;
}

/**
 * The native model whose synchronous methods throw typed errors (fromNative), as `enqueue` types the asynchronous
 * ones: on a GPU, state access fails too (a CUDA fault surfaces at the copy to the host) and must be a BackendError.
 */
function typedErrors(model: NativeModel): NativeModel {
  return new Proxy(model, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        try {
          return value.apply(target, args);
        } catch (error) {
          throw fromNative(error);
        }
      };
    },
  });
}

/** Throws a RangeError when a batch has more rows than one native call takes (before anything is allocated). */
export function checkBatch(what: string, rows: number): void {
  const { maxBatch } = limits();
  if (rows > maxBatch) throw new RangeError(`${what} has ${rows} rows, above the limit of ${maxBatch} per call`);
}

/**
 * Throws a RangeError when `rows` samples of `dataDim` values are more rows than one call takes or more bytes than
 * one array may hold: for callers that build the inputs of so many samples, before they allocate them.
 */
export function checkSamples(what: string, rows: number, dataDim: number): void {
  checkBatch(what, rows);
  const { maxArrayBytes } = limits();
  const bytes = rows * dataDim * Float32Array.BYTES_PER_ELEMENT;
  if (bytes > maxArrayBytes)
    throw new RangeError(
      `${what}: ${rows} samples need ${bytes} bytes, above the limit of ${maxArrayBytes} for one array`,
    );
}

/** The inputs of one batch, checked and converted for a native call. */
export interface BatchInputs {
  batch: number;
  x: Float32Array;
  t: Float32Array;
  cond: Int32Array;
}

/**
 * The conditional velocity network v(x, t, cond): a residual MLP (docs/network.md, `arch: 'mlp'`) or a diffusion
 * transformer (docs/dit.md, `arch: 'dit'`), both with adaLN modulation from the time and condition embedding,
 * computed by the native backend over one flat parameter buffer. Calls on one network
 * are serialised in the order they were made.
 */
export class VelocityNet {
  /** The resolved configuration. */
  readonly config: Readonly<NetConfig>;
  /** The backend holding the parameters. */
  readonly device: Device;
  /** The matrix-product arithmetic of the backend ('fp32' on the CPU). */
  readonly precision: Precision;
  #model: NativeModel | null;
  #layout: readonly ParamInfo[];
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;
  #disposed = false;
  // True while a queued call starts: calls made before dispose() still reach the model after it.
  #starting = false;

  private constructor(model: NativeModel) {
    this.#model = typedErrors(model);
    this.device = model.device();
    this.precision = model.precision();
    this.config = Object.freeze(model.config() as unknown as NetConfig);
    this.#layout = Object.freeze(
      model.layout().map((p) => Object.freeze({ ...p, shape: Object.freeze([...p.shape]) })),
    );
  }

  /**
   * Creates a network with fresh parameters. `config` fields override a preset: `'small'` for 2-D data (the
   * default), `'M'` (MLP) or `'D'` (DiT, the default with `arch: 'dit'`) for 16×16×3 images; unknown fields are
   * rejected.
   */
  static create(config: Partial<NetConfig> & { preset?: NetPreset } = {}, options: CreateOptions = {}): VelocityNet {
    const resolved = resolveNetConfig(config);
    const opts = objectOption('options', options);
    rejectUnknown('options', opts, ['seed', 'device', 'precision', 'gpu', 'lora']);
    const lora = opts.lora === undefined ? undefined : loraOptions('options.lora', opts.lora, resolved.arch);
    const seed = seedOption('options.seed', opts.seed ?? 0);
    const device = opts.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda' && device !== 'auto')
      throw new RangeError(`options.device must be 'cpu', 'cuda' or 'auto', got ${String(device)}`);
    const precision = opts.precision ?? 'tf32';
    if (precision !== 'tf32' && precision !== 'fp32')
      throw new RangeError(`options.precision must be 'tf32' or 'fp32', got ${String(precision)}`);
    const gpu = device === 'cpu' ? 0 : gpuOption(opts.gpu);
    let net: VelocityNet;
    try {
      net = new VelocityNet(new (native().Model)({ ...resolved }, seed, device, precision, gpu));
    } catch (error) {
      throw fromNative(error);
    }
    if (device === 'auto' && net.device === 'cpu') warnCpuFallback();
    if (lora !== undefined) {
      try {
        net.model.enableLora(lora.config, lora.seed);
      } catch (error) {
        net.dispose();
        throw fromNative(error);
      }
    }
    return net;
  }

  /** The parameter tensors in flat-buffer order (name, shape, offset, size, weight decay). */
  get params(): readonly ParamInfo[] {
    return this.#layout;
  }

  /** Total number of parameters. */
  get paramCount(): number {
    return this.model.paramCount();
  }

  /** Optimiser steps taken so far. */
  get step(): number {
    return this.model.step();
  }

  /** Whether dispose() was called. */
  get disposed(): boolean {
    return this.#disposed || this.#model === null || this.#model.released();
  }

  /** The native model, for the trainers and checkpoints of this package. @internal */
  get model(): NativeModel {
    if (this.#model === null || this.#model.released() || (this.#disposed && !this.#starting)) {
      throw new DisposedError('VelocityNet');
    }
    return this.#model;
  }

  /** The LoRA adapters (docs/lora.md), or null for a network that trains every parameter. */
  get lora(): LoraInfo | null {
    const info = this.model.lora();
    if (info === null) return null;
    const params = Object.freeze(info.layout.map((p) => Object.freeze({ ...p, shape: Object.freeze([...p.shape]) })));
    const last = params[params.length - 1];
    return Object.freeze({
      rank: info.rank,
      alpha: info.alpha,
      init: info.init,
      targets: Object.freeze([...info.targets]),
      params,
      paramCount: last === undefined ? 0 : last.offset + last.size,
    });
  }

  /**
   * Freezes the base parameters and trains LoRA adapters from now on: a fresh adapter (B = 0, so outputs are
   * unchanged) replaces any earlier one, and the θ_old / θ_ref / EMA sets and the optimiser state are dropped;
   * those sets are adapter sets from then on. Throws RangeError (nothing changed) for a bad rank, alpha or target.
   */
  enableLora(options: LoraOptions = {}): void {
    this.assertIdle('enableLora');
    const { config, seed } = loraOptions('lora', options, this.config.arch);
    try {
      this.model.enableLora(config, seed);
    } catch (error) {
      throw fromNative(error);
    }
  }

  /**
   * Folds the trained adapter into the base, W ← W + (alpha/rank)·B·A (PEFT's merge_and_unload): the network then
   * trains every parameter again, without adapter sets or optimiser state.
   */
  mergeLora(): void {
    this.assertIdle('mergeLora');
    if (this.lora === null) throw new RangeError('mergeLora: the network has no LoRA adapters');
    this.model.mergeLora();
  }

  /** A copy of all parameters as one flat buffer, in the order of `params`. */
  getParameters(): Float32Array {
    this.assertIdle('getParameters');
    const out = new Float32Array(this.paramCount);
    this.model.getParams(out);
    return out;
  }

  /** Replaces all parameters from a flat buffer in the order of `params`. */
  setParameters(flat: Float32Array): void {
    this.assertIdle('setParameters');
    if (!isFloat32Array(flat)) throw new TypeError('setParameters expects a Float32Array');
    if (flat.length !== this.paramCount) {
      throw new RangeError(`setParameters expects ${this.paramCount} values, got ${flat.length}`);
    }
    checkFinite('parameters', flat);
    this.model.setParams(flat);
  }

  /** Copies of the parameters by name. */
  parameters(): Record<string, Tensor> {
    const flat = this.getParameters();
    const result: Record<string, Tensor> = {};
    for (const p of this.#layout) result[p.name] = Tensor.from(flat.slice(p.offset, p.offset + p.size), p.shape);
    return result;
  }

  /**
   * The velocity v(x, t, cond): x (B, D), t (B) in [0, 1] or one number for all rows, cond (B, L) int32; with the
   * parameter set `params` (default 'theta').
   */
  async velocity(
    x: Tensor,
    t: Tensor | number,
    cond: Tensor<'int32'>,
    params: ParamSetName = 'theta',
  ): Promise<Tensor> {
    const inputs = this.checkInputs(x, t, cond);
    this.checkParamSet(params);
    const out = await this.enqueue(() => this.model.velocity(inputs.x, inputs.t, inputs.cond, inputs.batch, params));
    checkFinite('the velocity of these inputs', out);
    return Tensor.from(out, [inputs.batch, this.config.dataDim]);
  }

  /**
   * Forward and backward for verification: the output and the gradients of Σ out·dout with respect to x and every
   * parameter (flat, in the order of `params`), or with LoRA adapters every adapter parameter (in the order of
   * `lora.params`; the frozen base gets none).
   */
  async forwardBackward(
    x: Tensor,
    t: Tensor | number,
    cond: Tensor<'int32'>,
    dout: Tensor,
  ): Promise<{
    /** The velocity (B, D). */
    out: Tensor;
    /** The gradient with respect to x (B, D). */
    dx: Tensor;
    /** The gradients of the parameters (or of the adapters), flat. */
    grads: Float32Array;
  }> {
    const inputs = this.checkInputs(x, t, cond);
    checkTensor('dout', dout, 'float32', [inputs.batch, this.config.dataDim]);
    checkFinite('dout', dout.storage);
    const r = await this.enqueue(() =>
      this.model.forwardBackward(inputs.x, inputs.t, inputs.cond, dout.storage, inputs.batch),
    );
    checkFinite('the output of these inputs', r.out);
    checkFinite('the gradients of these inputs', r.grads);
    const shape = [inputs.batch, this.config.dataDim];
    return { out: Tensor.from(r.out, shape), dx: Tensor.from(r.dx, shape), grads: r.grads };
  }

  /** Validates a batch (shapes, dtypes, finite values, t in [0, 1], tokens in [0, vocabSize)). @internal */
  checkInputs(x: Tensor, t: Tensor | number, cond: Tensor<'int32'>): BatchInputs {
    this.model;
    if (!(x instanceof Tensor)) throw new TypeError('x must be a Tensor');
    const batch = x.shape[0] ?? 0;
    if (batch < 1) throw new RangeError(`x must have shape [B, ${this.config.dataDim}] with B >= 1`);
    checkBatch('x', batch);
    checkTensor('x', x, 'float32', [batch, this.config.dataDim]);
    checkFinite('x', x.storage);
    let times: Float32Array;
    if (typeof t === 'number') {
      times = new Float32Array(batch).fill(t);
    } else {
      checkTensor('t', t, 'float32', [batch]);
      times = t.storage;
    }
    for (let i = 0; i < times.length; i++) {
      const v = times[i] as number;
      if (!(v >= 0 && v <= 1)) throw new RangeError(`t must be in [0, 1], got ${v} at index ${i}`);
    }
    const tokens = this.checkCond(cond, batch);
    return { batch, x: x.storage, t: times, cond: tokens };
  }

  /** Throws unless the parameter set exists. @internal */
  checkParamSet(params: ParamSetName): void {
    if (!PARAM_SETS.includes(params)) {
      throw new RangeError(`parameter set must be one of ${PARAM_SETS.join(', ')}, got ${String(params)}`);
    }
    if (!this.model.hasParams(params)) {
      throw new RangeError(`this network has no '${params}' parameters (a DiffusionNFT trainer creates them)`);
    }
  }

  /** Validates condition tokens (B, L) in [0, vocabSize). @internal */
  checkCond(cond: Tensor<'int32'>, batch: number): Int32Array {
    checkBatch('cond', batch);
    checkTensor('cond', cond, 'int32', [batch, this.config.condSlots]);
    const tokens = cond.storage;
    for (let i = 0; i < tokens.length; i++) {
      const v = tokens[i] as number;
      if (v < 0 || v >= this.config.vocabSize) {
        throw new RangeError(`cond tokens must be in [0, ${this.config.vocabSize}), got ${v} at index ${i}`);
      }
    }
    return tokens;
  }

  /** Runs `call` after every earlier call on this network has settled. @internal */
  enqueue<T>(call: () => Promise<T>): Promise<T> {
    this.#pending += 1;
    const start = () => {
      this.#starting = true;
      try {
        return call();
      } finally {
        this.#starting = false;
      }
    };
    const run = this.#queue.then(start, start);
    this.#queue = run.catch(() => undefined);
    return run.then(
      (value) => {
        this.#pending -= 1;
        return value;
      },
      (error: unknown) => {
        this.#pending -= 1;
        throw fromNative(error);
      },
    );
  }

  /** Throws when an asynchronous call is in flight, so synchronous state access never races a step. @internal */
  assertIdle(what: string): void {
    this.model;
    if (this.#pending > 0) {
      throw new BusyError(`VelocityNet.${what}: ${this.#pending} call(s) in flight; await them first`);
    }
  }

  /**
   * Releases the native model once the calls made before it finish (they complete normally); later calls throw
   * DisposedError. Idempotent.
   */
  dispose(): void {
    const model = this.#model;
    if (model === null || this.#disposed) return;
    this.#disposed = true;
    // Free the native memory as soon as the calls already queued have settled, not at garbage collection.
    void this.#queue.then(() => {
      this.#model = null;
      model.release();
    });
  }

  /** Disposes of the network, as `dispose()` does: for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
