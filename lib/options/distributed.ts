// The trainers' `distributed` option (docs/distributed.md): data parallelism over MPI, and its settings.
import type { Schema } from './schema.js';

/**
 * How a model on the GPU sums its gradient over the ranks: 'nccl' in device memory over NCCL (libnccl.so.2, loaded
 * at run time), 'host' through host memory over MPI, 'auto' NCCL when every rank can load it, else 'host' with a
 * `DNFT_NCCL_FALLBACK` warning.
 */
export type DeviceCollectives = 'auto' | 'nccl' | 'host';

/** The settings of the trainers' `distributed` option, their ranges and defaults. */
export const DISTRIBUTED_SCHEMA = {
  timeout: { type: 'number', min: 0, max: 1e9, default: 600 },
  checkEvery: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0 },
  deviceCollectives: { type: 'enum', values: ['auto', 'nccl', 'host'], default: 'auto' },
} as const satisfies Schema;

/** The `distributed` option of the trainers: true, false, or settings; absent: on under an MPI launcher. */
export type DistributedOption =
  | boolean
  | {
      /** Seconds a collective may wait before the job is aborted (600; 0: forever). */
      timeout?: number;
      /** Compare a hash of every parameter set across the ranks every this many epochs, a debugging aid (0: never). */
      checkEvery?: number;
      /** How a model on the GPU sums over the ranks (see DeviceCollectives; 'auto'). */
      deviceCollectives?: DeviceCollectives;
    };
