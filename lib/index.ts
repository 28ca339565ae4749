/**
 * diffusion-nft: online RL post-training of flow-matching generators, with a C++/CUDA core.
 * This module is the package's only entry point.
 */
import { BusyError } from './errors.js';
import { type NativeBackendInfo, native } from './native.js';

export type { OptimalityOptions } from './advantage.js';
export { optimalityProbability } from './advantage.js';
export type { Checkpoint, LoadOptions, SaveOptions } from './checkpoint.js';
export { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
export type { Arch, DitConfig, MlpConfig, NetConfig, NetPreset } from './config.js';
export { CONFIG_D, CONFIG_M, CONFIG_SMALL } from './config.js';
export type { Dashboard, DashboardOptions } from './dashboard/server.js';
export { startDashboard } from './dashboard/server.js';
export type { DeviceCollectives, DistributedOption, World } from './distributed.js';
export type { StateDictProblem } from './errors.js';
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
} from './errors.js';
export type { GrpoLossInputs, GrpoLossOptions, SdeSampleOptions, SdeStepResult } from './flowgrpo.js';
export { grpoLoss, sampleSde, sdeLogProb, sdeStep } from './flowgrpo.js';
export type { ImageFolderOptions } from './image-folder.js';
export { ImageFolderDataset, imageFolderDataset } from './image-folder.js';
export type { LoadAdapterOptions, LoraInfo, LoraInit, LoraOptions, SaveAdapterOptions } from './lora.js';
export { loadAdapter, loraModules, saveAdapter, savePeftAdapter } from './lora.js';
export type { EvaluationScores, MetricsLogOptions, RecordHook, SampleGrid } from './metrics/log.js';
export { MetricsLog } from './metrics/log.js';
export type { EpochRecord, EvaluationRecord, MetricsRecord, StartRecord } from './metrics/records.js';
export { METRICS_VERSION, MetricsFormatError, parseRecords, readRunRecords } from './metrics/records.js';
export type { ParamSetName } from './native.js';
export type { CreateOptions, DeviceRequest, ParamInfo, Precision } from './net.js';
export { VelocityNet } from './net.js';
export type { NftLossInputs, NftLossOptions } from './nft.js';
export { nftLoss } from './nft.js';
export { interpolate, philox4x32 } from './ops.js';
export type { LrSchedule, OptimizerOptions, StepStats } from './optimizer.js';
export type { FlowMatchingOptions } from './pretrain.js';
export { FlowMatchingTrainer } from './pretrain.js';
export { SafetensorsError } from './safetensors.js';
export type {
  SampleOptions,
  SampleResult,
  Solver,
  SolverContext,
  SolverName,
  TimeGridOptions,
  VelocityFn,
} from './solvers.js';
export { sample, solvers, timeGrid } from './solvers.js';
export type { LoadStateDictOptions } from './state-dict.js';
export { loadStateDict } from './state-dict.js';
export { SAMPLE_STREAM, SDE_STREAM, USER_STREAM } from './streams.js';
export { tasks } from './tasks/index.js';
export type { Device, DType, RandomOptions } from './tensor.js';
export { liveTensors, Tensor } from './tensor.js';
export type { NamedReward, Prompt, RewardFn, Rewards } from './trainers/common.js';
export type { DiffusionNFTOptions, EtaSchedule, NftEpochStats } from './trainers/diffusion-nft.js';
export { DiffusionNFT, etaAt } from './trainers/diffusion-nft.js';
export type { FlowGRPOOptions, GrpoEpochStats } from './trainers/flowgrpo.js';
export { FlowGRPO } from './trainers/flowgrpo.js';
export type { EpochStats, EvaluateOptions, Evaluation, OnlineOptions, RunOptions } from './trainers/online.js';

/** What this build and machine offer: CUDA availability (and why not), the GPU's name, the CPU thread count. */
export function backendInfo(): NativeBackendInfo {
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
