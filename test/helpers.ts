import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import type { SafeTensor } from '../lib/core/safetensors.js';
import {
  type Device,
  FlowMatchingTrainer,
  type NetConfig,
  type ParamSetName,
  type Precision,
  Tensor,
  tasks,
  VelocityNet,
} from '../lib/index.js';

/** A temporary folder `dnft-<name>-…` for the tests of the file (or describe block) that asks, removed after them. */
export function tempFolder(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dnft-${name}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `node dist/lib/cli.js ...args` to its end (at most 4 minutes): its exit status, stdout and stderr. */
export function cli(...args: string[]): { status: number | null; out: string; err: string } {
  const run = spawnSync(process.execPath, ['dist/lib/cli.js', ...args], { encoding: 'utf8', timeout: 240_000 });
  return { status: run.status, out: run.stdout, err: run.stderr };
}

/** The toy2d task's reward that the trainers' suites train on: how red a sample's mode is. */
export const RED = { name: 'red', fn: tasks.toy2d.rewards.red };

/**
 * toy2d's height reward, tanh(y): the trainers' device tests train on it. It is continuous, so a small epoch has no
 * group of equal rewards (which a 0/1 reward leaves untrained, filtered out by its zero advantages) and the GPU's
 * rewards differ from the CPU's by rounding, not by a sample flipping between 0 and 1.
 */
export const UPPER = { name: 'upper', fn: tasks.toy2d.rewards.upperHalf };

/** The Debian interpreter with python3-torch: the oracles under reference/ run on it. */
export const PYTHON = '/usr/bin/python3';

/** Runs `reference/<script> ...args` on one thread and expects it to succeed (its stderr is the failure message). */
export function runReference(script: string, ...args: string[]): void {
  const run = spawnSync(PYTHON, [`reference/${script}`, ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  expect(run.status, run.stderr).toBe(0);
}

/** The small networks of the weight-exchange tests: an MLP (12 data floats) and a DiT on 2 × 4 × 4 images. */
export const TINY_MLP = { width: 16, depth: 2, mlpRatio: 2, timeFeatures: 8, vocabSize: 5, condSlots: 2 };
/** A DiT on 4 × 4 × 3 images: 4 patches, 2 heads of 8. */
export const TINY_DIT_RGB = {
  arch: 'dit',
  dataDim: 48,
  width: 16,
  depth: 2,
  mlpRatio: 2,
  timeFeatures: 8,
  vocabSize: 5,
  condSlots: 2,
  imageSize: 4,
  channels: 3,
  patch: 2,
  heads: 2,
} as const;
export const TINY_DIT = {
  arch: 'dit' as const,
  dataDim: 32,
  width: 8,
  depth: 2,
  mlpRatio: 2,
  timeFeatures: 6,
  vocabSize: 5,
  condSlots: 2,
  imageSize: 4,
  channels: 2,
  patch: 2,
  heads: 2,
};

/** `net`'s velocity on the inputs (input.x, input.t, input.cond) of an IO file a reference script wrote. */
export async function velocityOnInputs(net: VelocityNet, io: Record<string, SafeTensor>): Promise<Float32Array> {
  const x = io['input.x'] as SafeTensor;
  const cond = io['input.cond'] as SafeTensor;
  const v = await net.velocity(
    Tensor.from(x.data as Float32Array, x.shape),
    Tensor.from(io['input.t']?.data as Float32Array, [x.shape[0] as number]),
    Tensor.fromInt32(cond.data as Int32Array, cond.shape),
  );
  return v.storage;
}

/**
 * The device the device suites take: `DNFT_TEST_DEVICE`, 'cpu' (the default) or 'cuda', for an addon with a GPU,
 * real or simulated (`DNFT_ADDON`; docs/gpu.md, "The vitest suites on the simulated GPU").
 */
export const TEST_DEVICE: Device = testDevice();

function testDevice(): Device {
  const device = process.env.DNFT_TEST_DEVICE || 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`DNFT_TEST_DEVICE must be 'cpu' or 'cuda', got ${device}`);
  return device;
}

/** Where a device test runs: a backend and its matrix-product arithmetic, as VelocityNet.create takes them. */
export interface Placement {
  device: Device;
  precision: Precision;
}

/** The CPU (always FP32). */
export const CPU: Placement = { device: 'cpu', precision: 'fp32' };

/** Relative differences of whole steps and runs on the GPU from the CPU that docs/gpu.md states, per arithmetic. */
export const GPU_TOLERANCE: Record<Precision, number> = { fp32: 1e-4, tf32: 2e-2 };

/**
 * The bound of a comparison that holds to `fp32` in FP32 arithmetic (against a reference, or between two ways of
 * computing one thing), on `at`'s arithmetic: TF32's matrix products round their inputs to 10 mantissa bits.
 */
export function tolerance(at: Placement, fp32: number): number {
  return at.precision === 'tf32' ? Math.max(fp32, GPU_TOLERANCE.tf32) : fp32;
}

/** What a device test returns to compare between backends: arrays and numbers by name. */
export type Outcome = Record<string, ArrayLike<number> | number>;

/** Wider bounds than GPU_TOLERANCE for some outcomes of a device test, by name and arithmetic. */
export type Widened<T extends Outcome> = { [K in keyof T]?: Partial<Record<Precision, number>> };

/**
 * Runs a test's `body` on the CPU and, with DNFT_TEST_DEVICE=cuda, on the GPU in FP32 and in TF32: the body's own
 * expectations hold on each, and each GPU outcome must equal the CPU's within GPU_TOLERANCE (`widen` widens it for
 * the outcomes it names, each by a bound the caller justifies: an ill-conditioned statistic, a long run). Returns the
 * CPU's outcome.
 */
export async function onDevices<T extends Outcome>(
  body: (at: Placement) => Promise<T>,
  widen: Widened<T> = {},
): Promise<T> {
  const cpu = await body(CPU);
  if (TEST_DEVICE === 'cpu') return cpu;
  for (const precision of ['fp32', 'tf32'] as const) {
    const gpu = await body({ device: TEST_DEVICE, precision });
    expect(Object.keys(gpu)).toEqual(Object.keys(cpu));
    for (const [name, value] of Object.entries(gpu)) {
      const want = cpu[name] as ArrayLike<number> | number;
      const error =
        typeof value === 'number'
          ? relativeError([value], [want as number])
          : relativeError(value, want as ArrayLike<number>);
      const limit = widen[name]?.[precision] ?? GPU_TOLERANCE[precision];
      expect(error, `${name} on ${TEST_DEVICE} (${precision}) against the CPU`).toBeLessThanOrEqual(limit);
    }
  }
  return cpu;
}

/** onDevices' CPU run alone: a device test too large for the GPU runs of CI. */
export function onCpu<T extends Outcome>(body: (at: Placement) => Promise<T>): Promise<T> {
  return body(CPU);
}

/** A small network whose every parameter is non-zero (adaLN-Zero and the output layer start at 0). */
export function randomizedNet(config: Partial<NetConfig>, seed = 1, at: Placement = CPU): VelocityNet {
  const net = VelocityNet.create(config, { seed, ...at });
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

/**
 * The toy2d base model of the RL tests: 400 flow-matching steps on the 8-Gaussian mixture with 20% condition
 * dropout, so the null prompt samples the whole mixture. Returns its parameters.
 */
export async function toy2dBaseParameters(): Promise<Float32Array> {
  const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
  const trainer = new FlowMatchingTrainer(net, { lr: 2e-3, condDropout: 0.2, seed: 1 });
  for (let i = 0; i < 400; i++) {
    const { x0, cond } = tasks.toy2d.batch(256, 1, i);
    await trainer.step({ x0, cond });
  }
  const parameters = net.getParameters();
  net.dispose();
  return parameters;
}

/** A network of this config holding these parameters. */
export function netWithParameters(
  config: Partial<NetConfig>,
  parameters: Float32Array,
  at: Placement = CPU,
): VelocityNet {
  const net = VelocityNet.create(config, at);
  net.setParameters(parameters);
  return net;
}

/** A parameter set of `net` as it trains: the whole set, or only the adapters' part when the net has LoRA adapters. */
export function trainedSet(net: VelocityNet, set: ParamSetName = 'theta'): Float32Array {
  const lora = net.lora;
  const out = new Float32Array(lora === null ? net.paramCount : lora.paramCount);
  if (lora === null) net.model.getParams(out, set);
  else net.model.getAdapter(out, set);
  return out;
}
