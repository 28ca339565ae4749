// Loads the native addon: a local build (build/Release) when present, else the prebuilt binary shipped in
// prebuilds/<platform>-<arch>/, both found by node-gyp-build from the package root.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AwmLossOptions } from '../options/awm-loss.js';
import type { DgpoLossOptions } from '../options/dgpo-loss.js';
import type { GrpoLossOptions, SdeKind } from '../options/grpo-loss.js';
import type { NetConfig } from '../options/net-config.js';
import type { NftLossOptions } from '../options/nft-loss.js';
import type { OptimizerOptions, StepStats } from '../options/optimizer.js';
import { BackendError } from './errors.js';

/** Layout entry of one parameter tensor in the flat buffer. */
export interface NativeParamSpec {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  decay: boolean;
}

// The option objects of the native calls. The TypeScript option tables (lib/options/schema.ts and the groups' schemas)
// check every value and fill every default; the addon checks only that each field is there with the right type.

/** AdamW settings of a training step, all given. */
export type NativeOptimizerOptions = Required<OptimizerOptions>;

/** One flow-matching step's options, every field resolved (FlowMatchingTrainer.options). */
export interface ResolvedFlowMatchingOptions extends NativeOptimizerOptions {
  /** FlowMatchingOptions.seed, as a number. */
  seed: number;
  /** FlowMatchingOptions.microBatch. */
  microBatch: number;
  /** FlowMatchingOptions.condDropout. */
  condDropout: number;
  /** Index of row 0 in the step's global batch (data-parallel: docs/distributed.md); keys its draws. */
  firstSample: number;
}

/** The NFT loss. */
export type NativeNftLossParams = Required<NftLossOptions>;

/** One DiffusionNFT step: the loss, the optimiser, and the training times (the grid's, or t ~ U(0, 1) without). */
export interface NativeNftStepOptions extends NativeOptimizerOptions, NativeNftLossParams {
  seed: number;
  times?: Float64Array;
  timesPerSample: number;
  microBatch: number;
  /** Index of sample 0 in the step's global batch (data-parallel: docs/distributed.md); keys its draws. */
  firstSample: number;
}

/** The AWM loss. */
export type NativeAwmLossParams = Required<AwmLossOptions>;

/** One AWM step: each sample trained at one grid time drawn in each stratum [strata[k], strata[k + 1]) of indices. */
export interface NativeAwmStepOptions extends NativeOptimizerOptions, NativeAwmLossParams {
  seed: number;
  times: Float64Array;
  strata: Float64Array;
  microBatch: number;
  /** Index of sample 0 in the step's global batch (data-parallel: docs/distributed.md); keys its draws. */
  firstSample: number;
}

/** The DGPO loss, with the group size G of its group weights. */
export interface NativeDgpoParams extends Required<DgpoLossOptions> {
  groupSize: number;
}

/** One DGPO step: every sample trained at each of `times`; group ids in [0, groups) over every rank. */
export interface NativeDgpoStepOptions extends NativeOptimizerOptions, NativeDgpoParams {
  seed: number;
  times: Float64Array;
  groups: number;
  microBatch: number;
}

/** Row means of an AWM batch: the flow-matching error l, log q, and the two KL terms' mean squared differences. */
export interface AwmStatistics {
  /** The mean flow-matching error l. */
  fm: number;
  /** The mean log q(l, t) of the generalised-Huber weighting. */
  logQ: number;
  /** The mean squared difference to the base's velocity (0 without a KL term). */
  kl: number;
  /** The mean squared difference to the EMA anchor's velocity (0 without an EMA term). */
  emaKl: number;
}

/** Of a DGPO batch: the fraction of rows whose gradient the clip stopped, and the mean group weight σ(S_g). */
export interface DgpoStatistics {
  /** The fraction of rows whose gradient the clip stopped. */
  clipFraction: number;
  /** The mean group weight σ(S_g). */
  weightMean: number;
}

/** The GRPO loss. */
export type NativeGrpoParams = Required<GrpoLossOptions>;

/**
 * One step of a likelihood method over recorded rollouts on `grid`, training `trainSteps` transitions of each sample
 * from its `firstStep` (empty: from 0).
 */
export interface NativeGrpoStepOptions extends NativeOptimizerOptions, NativeGrpoParams {
  grid: Float64Array;
  trainSteps: number;
  firstStep: Int32Array;
  sdeA: number;
  /** GRPO-Guard's loss, from the rollout's stored step means. */
  guard: boolean;
  cfgScale: number;
  /** Guidance applies to the transitions starting at cfgTMin ≤ t ≤ cfgTMax only. */
  cfgTMin: number;
  cfgTMax: number;
  microBatch: number;
}

/** A rollout. Guidance applies to velocities at cfgTMin ≤ t ≤ cfgTMax only. */
export interface NativeSampleOptions {
  solver: 'euler' | 'heun' | 'dpm2' | 'sde' | 'sa-solver';
  grid: Float64Array;
  cfgScale: number;
  cfgTMin: number;
  cfgTMax: number;
  seed: number;
  firstSample: number;
  chunk: number;
  /** The SDE's noise level a (required by 'sde', read by no other solver). */
  sdeA?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them (required by 'sde'). */
  logpSum?: boolean;
  /** The stochastic step (required by 'sde'). */
  sde?: SdeKind;
  /** 'sde': the steps [windowLo, windowHi) are stochastic, the others ODE steps (required by 'sde'). */
  windowLo?: number;
  windowHi?: number;
  /** 'sde': the ODE after the window (required by 'sde'). */
  tailSolver?: 'euler' | 'dpm2';
  /** 'sa-solver': the coefficients of lib/sampling/sa-solver.ts's saSolverPlan (required by 'sa-solver'). */
  saPlan?: Float64Array;
}

/**
 * The parameter sets of a network: 'theta' (trained), 'old' (DiffusionNFT's rollout policy), 'ref' (the frozen
 * reference of KL terms), 'ema' (an exponential moving average of θ for evaluation).
 */
export type ParamSetName = 'theta' | 'old' | 'ref' | 'ema';

export interface NativeModel {
  layout(): NativeParamSpec[];
  config(): NetConfig;
  paramCount(): number;
  step(): number;
  /** The backend the model lives on. */
  device(): 'cpu' | 'cuda';
  /** The GEMM arithmetic: 'tf32' or 'fp32' (always 'fp32' on the CPU). */
  precision(): 'tf32' | 'fp32';
  getParams(out: Float32Array, which?: ParamSetName): void;
  setParams(src: Float32Array, which?: ParamSetName): void;
  hasParams(which: ParamSetName): boolean;
  /** Floats the native model holds for its parameter sets and for its gradient and AdamW moments. */
  allocatedFloats(): { parameterSets: number; trainingState: number };
  copyParams(dst: ParamSetName, src: ParamSetName): void;
  blendParams(dst: ParamSetName, eta: number, src: ParamSetName): void;
  hasOptimizerState(): boolean;
  getOptimizerState(m: Float32Array, v: Float32Array): void;
  setOptimizerState(m: Float32Array, v: Float32Array, step: number): void;
  resetOptimizer(): void;
  /**
   * Steps sum gradients and statistics over the MPI ranks (after mpiOpen), or not (lib/training/distributed.ts); `nccl`: a
   * model on the GPU sums its gradient over NCCL (every rank at once), else through host memory over MPI.
   */
  setDistributed(on: boolean, nccl?: boolean): void;
  /** Frees the native model now; every other method throws (code DNFT_DISPOSED) afterwards. */
  release(): void;
  released(): boolean;
  velocity(
    x: Float32Array,
    t: Float32Array,
    cond: Int32Array,
    batch: number,
    which?: ParamSetName,
  ): Promise<Float32Array>;
  forwardBackward(
    x: Float32Array,
    t: Float32Array,
    cond: Int32Array,
    dout: Float32Array,
    batch: number,
  ): Promise<{ out: Float32Array; dx: Float32Array; grads: Float32Array }>;
  flowMatchingStep(
    x0: Float32Array,
    cond: Int32Array,
    batch: number,
    options: ResolvedFlowMatchingOptions,
  ): Promise<StepStats>;
  sample(
    noise: Float32Array | null,
    cond: Int32Array,
    batch: number,
    options: NativeSampleOptions,
    trajectory: boolean,
    which?: ParamSetName,
    means?: boolean,
  ): Promise<{ x: Float32Array; trajectory: Float32Array | null; logp?: Float32Array; means?: Float32Array }>;
  grpoStep(
    trajectory: Float32Array,
    cond: Int32Array,
    advantages: Float32Array,
    logpOld: Float32Array,
    batch: number,
    options: NativeGrpoStepOptions,
    meansOld?: Float32Array | null,
  ): Promise<StepStats & { clipFraction: number; approxKl: number; ratioMean: number }>;
  awmStep(
    x0: Float32Array,
    cond: Int32Array,
    advantages: Float32Array,
    batch: number,
    options: NativeAwmStepOptions,
  ): Promise<StepStats & AwmStatistics>;
  dgpoStep(
    x0: Float32Array,
    cond: Int32Array,
    advantages: Float32Array,
    groupIds: Int32Array,
    batch: number,
    options: NativeDgpoStepOptions,
  ): Promise<StepStats & DgpoStatistics>;
  nftStep(
    x0: Float32Array,
    cond: Int32Array,
    r: Float32Array,
    batch: number,
    options: NativeNftStepOptions,
  ): Promise<StepStats>;
  /** LoRA (lib/model/lora.ts, which resolves the options); the native side checks the target names. */
  enableLora(options: NativeLoraOptions, seed: number | bigint): void;
  lora(): NativeLoraInfo | null;
  getAdapter(out: Float32Array, which?: ParamSetName): void;
  setAdapter(src: Float32Array, which?: ParamSetName): void;
  mergeLora(): void;
}

export interface NativeLoraOptions {
  rank: number;
  alpha: number;
  init: 'gaussian' | 'kaiming';
  targets: string[];
}

export interface NativeLoraInfo extends NativeLoraOptions {
  layout: NativeParamSpec[];
}

/** What `backendInfo()` reports of this build and machine. */
export interface BackendInfo {
  /** Whether the GPU can be used: a CUDA build, a driver, and at least one GPU visible. */
  cuda: boolean;
  /** Whether this build of the addon includes the CUDA backend. */
  compiledWithCuda: boolean;
  /** How many GPUs the process sees (0 in a CPU-only build). */
  deviceCount: number;
  /** The name of GPU 0, when there is one. */
  device?: string;
  /** Why CUDA cannot be used, when it cannot. */
  cudaUnavailableReason?: string;
  /** CUDA builds: the CUDA runtime linked into the binary, e.g. '13.0'. */
  cudaRuntime?: string;
  /** CUDA builds: the oldest NVIDIA driver branch that runtime accepts, e.g. 580. */
  requiredDriver?: number;
  /** CUDA builds with a driver: the newest CUDA version the installed driver supports, e.g. '12.8'. */
  driverCudaVersion?: string;
  /** CUDA builds on Linux with a driver: the installed NVIDIA driver's version, e.g. '580.65.06'. */
  driverVersion?: string;
  /** The native CPU thread pool's thread count (see `setThreads`). */
  threads: number;
  /** The CPU kernel path in use (native/cpu/simd.h): the widest the CPU has, or the one DNFT_CPU_KERNELS names. */
  cpuKernels: 'generic' | 'avx2' | 'avx512';
  /** The CPU GEMM micro-kernel of that path, e.g. 'avx512-14x32'. */
  sgemmKernel: string;
}

export interface NativeLimits {
  /** Rows of one batch. */
  maxBatch: number;
  /** Bytes of any one array a call allocates. */
  maxArrayBytes: number;
  /** Optimiser steps a model may record (2^40). */
  maxStep: number;
}

export interface NativeAddon {
  Model: new (config: NetConfig, seed: number | bigint, device: string, precision: string, gpu: number) => NativeModel;
  backendInfo(): BackendInfo;
  /** FLOP/s of independent FMAs of `kernels`' vector width on `threads` threads at once (native/cpu/fma_peak.h). */
  fmaPeak(kernels: 'avx2' | 'avx512', threads: number, seconds: number): number;
  setThreads(threads: number): void;
  /** The bounds every native call checks before allocating. */
  limits(): NativeLimits;
  /** Data parallelism over libdnft_mpi.so (native/mpi/dnft_mpi.h; lib/training/distributed.ts). */
  mpiOpen(path: string, timeoutSeconds: number): { rank: number; size: number };
  mpiAllgather(bytes: Uint8Array): Uint8Array;
  mpiSum(values: Float64Array): void;
  mpiBcast(bytes: Uint8Array, root: number): void;
  mpiAbort(message: string, code: number): void;
  mpiFinalize(): void;
  /** NCCL's version, loading libnccl.so.2 ($DNFT_NCCL_LIBRARY) on first use; throws DNFT_BACKEND when it cannot. */
  ncclVersion(): string;
  /** The flat parameter layout of a config, computed without allocating a model. */
  paramLayout(config: Record<string, number | string>): NativeParamSpec[];
  /** The adapter layout of a config (lib/model/lora.ts), without allocating a model. */
  loraLayout(config: Record<string, number | string>, lora: NativeLoraOptions): NativeParamSpec[];
  /** The module names inside a block that LoRA can target, in layout order. */
  loraModules(config: Record<string, number | string>): string[];
  philox4x32(counter: Uint32Array, key: Uint32Array): Uint32Array;
  randomFill(
    out: Float32Array,
    seed: number | bigint,
    stream: number,
    offset: number,
    kind: 'normal' | 'uniform',
  ): void;
  sdeStep(
    x: Float32Array,
    v: Float32Array,
    noise: Float32Array,
    t: number,
    tNext: number,
    a: number,
    tFirst: number,
    cps?: boolean,
  ): { mean: Float32Array; xNext: Float32Array; std: number; sigma: number };
  sdeCoefficients(
    t: number,
    tNext: number,
    a: number,
    tFirst: number,
    cps?: boolean,
  ): { xCoef: number; vCoef: number; std: number; sigma: number };
  sdeLogp(xNext: Float32Array, mean: Float32Array, std: number, dim: number, sum: boolean, cps?: boolean): Float32Array;
  grpoLoss(
    vTheta: Float32Array,
    vRef: Float32Array | null,
    x: Float32Array,
    xNext: Float32Array,
    rows: Float32Array,
    advantages: Float32Array,
    logpOld: Float32Array,
    dim: number,
    params: NativeGrpoParams,
  ): { loss: number; grad: Float32Array; clipFraction: number; approxKl: number; ratioMean: number };
  guardLoss(
    vTheta: Float32Array,
    x: Float32Array,
    xNext: Float32Array,
    meanOld: Float32Array,
    rows: Float32Array,
    advantages: Float32Array,
    logpOld: Float32Array,
    dim: number,
    params: NativeGrpoParams,
  ): { loss: number; grad: Float32Array; clipFraction: number; approxKl: number; ratioMean: number };
  awmLoss(
    vTheta: Float32Array,
    vRef: Float32Array | null,
    vEma: Float32Array | null,
    target: Float32Array,
    t: Float32Array,
    advantages: Float32Array,
    dim: number,
    params: NativeAwmLossParams,
  ): { loss: number; grad: Float32Array } & AwmStatistics;
  dgpoLoss(
    vTheta: Float32Array,
    vRef: Float32Array | null,
    vOld: Float32Array,
    target: Float32Array,
    advantages: Float32Array,
    groupIds: Int32Array,
    times: number,
    dim: number,
    params: NativeDgpoParams,
  ): { loss: number; grad: Float32Array } & DgpoStatistics;
  nftLoss(
    vTheta: Float32Array,
    vOld: Float32Array,
    vRef: Float32Array | null,
    target: Float32Array,
    t: Float32Array,
    r: Float32Array,
    dim: number,
    params: NativeNftLossParams,
  ): { loss: number; grad: Float32Array };
  interpolate(
    x0: Float32Array,
    t: Float32Array,
    dim: number,
    seed: number | bigint,
    offset: number,
  ): { xt: Float32Array; target: Float32Array };
}

/** The package root: the folder holding package.json, above dist/lib/ or lib/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new BackendError('cannot find the diffusion-nft package root');
    dir = parent;
  }
  return dir;
}

/** The package's version, from its package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The platforms with a prebuilt binary in the package (glibc Linux). */
export const PREBUILT = ['linux-x64 (CPU + CUDA)', 'linux-arm64 (CPU)'];

/** How a user builds the addon inside the installed package (docs/install.md gives the same commands). */
export const BUILD_COMMANDS = [
  'npm install --no-save cmake-js@8.0.0 node-addon-api@8.9.2',
  'npx cmake-js compile -d node_modules/diffusion-nft --CDDNFT_BUILD_TESTS=OFF',
];

let addon: NativeAddon | undefined;

/** The loaded addon; throws a BackendError that says what was looked for and how to build it. */
export function native(): NativeAddon {
  if (addon !== undefined) return addon;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  try {
    // DNFT_ADDON names another build of the addon, e.g. the sanitizer build of scripts/ci-reliability.sh.
    const path = process.env.DNFT_ADDON;
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = path ? (require(path) as NativeAddon) : load(root);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new BackendError(
      [
        'diffusion-nft: could not load its native addon.',
        `  looked in: ${join(root, 'build', 'Release')} (a local build) and ${join(root, 'prebuilds', `${process.platform}-${process.arch}`)} (prebuilt binaries)`,
        `  platform: ${process.platform}-${process.arch}, node ${process.version}, N-API ${process.versions.napi}`,
        `  reason: ${reason}`,
        `  prebuilt: ${PREBUILT.join(', ')}; on another platform, build it from the shipped sources (CMake and a`,
        '  C++17 compiler; CUDA when nvcc is found) from the folder of your project (docs/install.md):',
        ...BUILD_COMMANDS.map((command) => `    ${command}`),
      ].join('\n'),
      { cause: error },
    );
  }
  return addon;
}

let cachedLimits: NativeLimits | undefined;

/** The native limits (docs/reliability.md), read once. */
export function limits(): NativeLimits {
  cachedLimits ??= native().limits();
  return cachedLimits;
}
