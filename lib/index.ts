/**
 * diffusion-nft: online RL post-training of flow-matching generators, with a C++/CUDA core.
 * This module is the package's only entry point.
 */
// The published types use Node's (Buffer, AbortSignal, NodeJS.ProcessEnv) and Symbol.dispose: referenced here so
// that a project type-checks them without listing "node" in its `types` (TypeScript 7 includes no @types by default)
// and at a target below ES2025.
/// <reference types="node" preserve="true" />
/// <reference lib="esnext.disposable" preserve="true" />
import { BusyError } from './core/errors.js';
import { type BackendInfo, native } from './core/native.js';

export type { StateDictProblem } from './core/errors.js';
export {
  BackendError,
  BusyError,
  CheckpointError,
  DatasetError,
  DiffusionNftError,
  DisposedError,
  DistributedError,
  NumericError,
  RewardError,
  StateDictError,
} from './core/errors.js';
export type {
  AwmStatistics,
  BackendInfo,
  DgpoStatistics,
  ParamSetName,
  ResolvedFlowMatchingOptions,
} from './core/native.js';
export { philox4x32, SAMPLE_STREAM, SDE_STREAM, USER_STREAM } from './core/random.js';
export { SafetensorsError } from './core/safetensors.js';
export type { ArrayOf, Device, DType, RandomOptions } from './core/tensor.js';
export { liveTensors, Tensor } from './core/tensor.js';
export type { Dashboard, DashboardOptions } from './dashboard/server.js';
export { startDashboard } from './dashboard/server.js';
export type { ImageFolderOptions } from './data/image-folder.js';
export { ImageFolderDataset, imageFolderDataset } from './data/image-folder.js';
export type { ImageGridOptions } from './images/png.js';
export { imageGrid } from './images/png.js';
export type {
  EpochFields,
  EvaluationScores,
  MetricsLogOptions,
  ProgressFields,
  RecordHook,
  ReferenceScores,
  SampleGrid,
} from './metrics/log.js';
export { MetricsLog } from './metrics/log.js';
export type {
  EpochRecord,
  EpochSeconds,
  EvaluationRecord,
  MetricsRecord,
  Phase,
  ProgressRecord,
  ReferenceRecord,
  StartRecord,
} from './metrics/records.js';
export { METRICS_VERSION, MetricsFormatError, PHASES, parseRecords, readRunRecords } from './metrics/records.js';
export type { Checkpoint, LoadOptions, SaveOptions } from './model/checkpoint.js';
export { loadCheckpoint, saveCheckpoint } from './model/checkpoint.js';
export type { LoadAdapterOptions, SaveAdapterOptions } from './model/lora.js';
export { loadAdapter, loraModules, saveAdapter, savePeftAdapter } from './model/lora.js';
export type { CreateOptions, DeviceRequest, LoraInfo, ParamInfo, Precision } from './model/net.js';
export { VelocityNet } from './model/net.js';
export type { ExportOnnxOptions } from './model/onnx.js';
export { exportOnnx } from './model/onnx.js';
export type { LoadStateDictOptions } from './model/state-dict.js';
export { loadStateDict } from './model/state-dict.js';
export type { OptimalityOptions } from './options/advantage.js';
export type { AwmLossOptions } from './options/awm-loss.js';
export type { DgpoLossOptions } from './options/dgpo-loss.js';
export type { DeviceCollectives, DistributedOption } from './options/distributed.js';
export type { FlowMatchingOptions } from './options/flow-matching.js';
export type { GrpoLossOptions, SdeKind } from './options/grpo-loss.js';
export type { LoraInit, LoraOptions } from './options/lora.js';
export type { Arch, DitConfig, MlpConfig, NetConfig, NetPreset } from './options/net-config.js';
export { CONFIG_D, CONFIG_M, CONFIG_SMALL } from './options/net-config.js';
export type { NftLossOptions } from './options/nft-loss.js';
export type { LrSchedule, OptimizerOptions, StepStats } from './options/optimizer.js';
export { optimalityProbability } from './rl/advantage.js';
export type { AwmLossInputs, AwmLossResult } from './rl/awm-loss.js';
export { awmLoss } from './rl/awm-loss.js';
export type { DgpoLossInputs, DgpoLossResult } from './rl/dgpo-loss.js';
export { dgpoLoss } from './rl/dgpo-loss.js';
export type { GrpoLossInputs } from './rl/grpo-loss.js';
export { grpoLoss } from './rl/grpo-loss.js';
export type { GuardLossInputs } from './rl/guard-loss.js';
export { guardLoss } from './rl/guard-loss.js';
export type { NftLossInputs } from './rl/nft-loss.js';
export { nftLoss } from './rl/nft-loss.js';
export { interpolate } from './sampling/interpolate.js';
export type { OnnxOutput, OnnxSession, OnnxTensorConstructor } from './sampling/onnx-model.js';
export { onnxModel } from './sampling/onnx-model.js';
export type { SaSolverOptions } from './sampling/sa-solver.js';
export type { SdeSampleOptions, SdeStepResult } from './sampling/sde.js';
export { sampleSde, sdeLogProb, sdeStep } from './sampling/sde.js';
export type {
  SampleOptions,
  SampleResult,
  Solver,
  SolverContext,
  SolverName,
  TimeGridOptions,
  VelocityFn,
} from './sampling/solvers.js';
export { SOLVER_NAMES, sample, saSolver, solvers, timeGrid } from './sampling/solvers.js';
export * as tasks from './tasks/index.js';
export type { ShapesPrompt } from './tasks/shapes/prompts.js';
export type { Toy2dPrompt } from './tasks/toy2d.js';
export type { AWMOptions, AwmEpochStats } from './training/awm.js';
export { AWM, awmStrata } from './training/awm.js';
export type { NamedReward, Prompt, RewardFn, Rewards } from './training/common.js';
export type { DGPOOptions, DgpoEpochStats } from './training/dgpo.js';
export { DGPO } from './training/dgpo.js';
export type { DiffusionNFTOptions, EtaSchedule, NftEpochStats } from './training/diffusion-nft.js';
export { DiffusionNFT, etaAt } from './training/diffusion-nft.js';
export type { World } from './training/distributed.js';
export { FlowMatchingTrainer } from './training/flow-matching.js';
export type { FlowGRPOOptions, GrpoEpochStats } from './training/flowgrpo.js';
export { FlowGRPO } from './training/flowgrpo.js';
export type { FastEpochStats, FlowGRPOFastOptions } from './training/grpo-fast.js';
export { FlowGRPOFast, fastWindowStart } from './training/grpo-fast.js';
export type { GRPOGuardOptions } from './training/grpo-guard.js';
export { GRPOGuard } from './training/grpo-guard.js';
export type { LikelihoodEpochStats, LikelihoodOptions, WholeGridOptions } from './training/likelihood.js';
export type { MixEpochStats, MixGRPOOptions } from './training/mixgrpo.js';
export { flashGrid, MixGRPO, mixWindow } from './training/mixgrpo.js';
export type {
  EpochStats,
  EvaluateOptions,
  Evaluation,
  OnlineOptions,
  ResumePlacement,
  RunOptions,
} from './training/online-options.js';

/** What this build and machine offer: CUDA availability (and why not), the GPU's name, the CPU thread count. */
export function backendInfo(): BackendInfo {
  return native().backendInfo();
}

/**
 * Sets the number of CPU threads of the native thread pool (default: DNFT_NUM_THREADS, else the cores the process
 * may run on).
 * Throws BusyError while a native call is in flight (in any worker thread): await the work first.
 */
export function setThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw new RangeError(`threads must be an integer in [1, 1024], got ${threads}`);
  }
  try {
    native().setThreads(threads);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'DNFT_STATE') throw new BusyError((error as Error).message);
    throw error;
  }
}
