// Data parallelism over MPI (docs/distributed.md): the world of this process, opened once through libdnft_mpi.so,
// which `npm run build:mpi` builds against the local MPI, and the path of a model's gradient sums (NCCL for a model
// on the GPU, else MPI). A process that is not distributed never touches MPI or NCCL.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, DistributedError, fromNative } from '../core/errors.js';
import { launchedByMpi, launcherSize } from '../core/launcher.js';
import { type NativeModel, native } from '../core/native.js';
import type { Device } from '../core/tensor.js';
import { type DeviceCollectives, DISTRIBUTED_SCHEMA } from '../options/distributed.js';
import { type Resolved, resolveOptions } from '../options/schema.js';

/** This process's place in the job. */
export interface World {
  /** This process's rank, 0 … size − 1. */
  rank: number;
  /** The number of ranks. */
  size: number;
  /** Epochs between parameter checks (0: none). */
  checkEvery: number;
  /** The trainer's choice of sums for a model on the GPU. */
  deviceCollectives: DeviceCollectives;
}

type Settings = Resolved<typeof DISTRIBUTED_SCHEMA>;

let world: World | undefined;

/** libdnft_mpi.so: $DNFT_MPI_LIBRARY, else build/mpi/ of the package (written by `npm run build:mpi`). */
export function mpiLibraryPath(): string {
  if (process.env.DNFT_MPI_LIBRARY) return process.env.DNFT_MPI_LIBRARY;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'build', 'mpi', 'libdnft_mpi.so');
}

/** The world for a trainer's `distributed` option: undefined runs in one process, exactly as without MPI. */
export function openWorld(what: string, option: unknown): World | undefined {
  if (option === false || (option === undefined && !launchedByMpi())) return undefined;
  if (option !== true && option !== undefined && (option === null || typeof option !== 'object')) {
    throw new TypeError(`${what} must be a boolean or { timeout, checkEvery, deviceCollectives }`);
  }
  const settings: Settings = resolveOptions(what, option === true ? undefined : option, DISTRIBUTED_SCHEMA);
  const own = { checkEvery: settings.checkEvery, deviceCollectives: settings.deviceCollectives };
  if (world !== undefined) return { ...world, ...own };
  const path = mpiLibraryPath();
  if (!existsSync(path)) {
    throw new BackendError(
      `${what}: distributed training needs ${path}; build it against your MPI with \`npm run build:mpi\` ` +
        '(needs an MPI such as Open MPI: apt-get install openmpi-bin libopenmpi-dev), or set DNFT_MPI_LIBRARY',
    );
  }
  const opened = native().mpiOpen(path, settings.timeout);
  // MPI_Finalize once the process is done, so the launcher sees a clean exit.
  process.once('exit', () => native().mpiFinalize());
  // A library of another MPI than the launcher's does not see the launcher's ranks: each process would be a world
  // of one, every rank training and writing alone.
  const launched = launcherSize();
  if (launched > 1 && opened.size !== launched) {
    throw new BackendError(
      `${what}: the launcher started ${launched} ranks but ${path} sees a world of ${opened.size}: it was built ` +
        "against another MPI than the launcher's (e.g. Open MPI's library under MPICH's mpiexec); build it against " +
        "the launcher's MPI or set DNFT_MPI_LIBRARY to such a library (docs/distributed.md)",
    );
  }
  world = { ...opened, checkEvery: 0, deviceCollectives: 'auto' };
  return { ...world, ...own };
}

let warnedHostSums = false;

// Why this rank's model cannot sum over NCCL; undefined when it can.
function ncclUnusable(device: Device): string | undefined {
  if (device !== 'cuda') return 'its model is on the CPU';
  try {
    native().ncclVersion();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const MODES: readonly DeviceCollectives[] = DISTRIBUTED_SCHEMA.deviceCollectives.values;

/**
 * Makes `model`'s steps sum over the world (every rank at once). A model on the GPU sums its gradient over NCCL
 * when `world.deviceCollectives` allows and every rank's model is on a GPU and loads NCCL, else through host
 * memory over MPI; 'nccl' then throws a BackendError on every rank, naming the first rank that cannot and why.
 */
export function distributeModel(what: string, model: NativeModel, device: Device, w: World): void {
  const reason = w.deviceCollectives === 'host' ? undefined : ncclUnusable(device);
  // Every rank takes the same path: the ranks' choices must agree, and NCCL runs only when all of them can.
  const mine = MODES.indexOf(w.deviceCollectives) * 2 + (reason === undefined ? 1 : 0);
  const all = allgather(Uint8Array.of(mine)).map((b) => b[0] as number);
  const other = all.findIndex((b) => b >> 1 !== mine >> 1);
  if (other >= 0) {
    throw new DistributedError(
      `${what}: distributed.deviceCollectives differs between ranks (rank ${w.rank}: '${w.deviceCollectives}', ` +
        `rank ${other}: '${MODES[(all[other] as number) >> 1]}'): every rank must be given the same options`,
      other,
    );
  }
  const lacking = all.findIndex((b) => (b & 1) === 0);
  const nccl = w.deviceCollectives !== 'host' && lacking < 0;
  const why = reason ?? `rank ${lacking} cannot (its own error says why)`;
  if (!nccl && w.deviceCollectives === 'nccl') {
    throw new BackendError(`${what}: deviceCollectives 'nccl' needs NCCL and a model on the GPU on every rank: ${why}`);
  }
  if (!nccl && w.deviceCollectives === 'auto' && device === 'cuda' && !warnedHostSums) {
    warnedHostSums = true;
    process.emitWarning(
      `the gradients of the model on the GPU are summed through host memory over MPI, not NCCL: ${why} ` +
        '(docs/distributed.md)',
      { code: 'DNFT_NCCL_FALLBACK' },
    );
  }
  try {
    model.setDistributed(true, nccl);
  } catch (error) {
    throw fromNative(error);
  }
}

/** This process's rank and the world size once a world is open; rank 0 of 1 in one process. */
export function currentWorld(): { rank: number; size: number } {
  return { rank: world?.rank ?? 0, size: world?.size ?? 1 };
}

/** Equal-sized byte blocks of every rank, in rank order. */
export function allgather(bytes: Uint8Array): Uint8Array[] {
  const all = native().mpiAllgather(bytes);
  const size = (world as World).size;
  return Array.from({ length: size }, (_, r) => all.subarray(r * bytes.length, (r + 1) * bytes.length));
}

/**
 * Checks that every rank computes the same run: a hash of `parts` (the options, θ's bytes) must agree. SHA-256 in
 * native code: θ of a preset M network is 47 MB, which a hash written in JavaScript took a minute over.
 */
export function checkSameRun(what: string, ...parts: (string | Uint8Array)[]): void {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  const mine = new Uint8Array(hash.digest());
  const all = allgather(mine);
  const differ = all.map((x, r) => ({ x, r })).filter(({ x }) => x.some((v, i) => v !== mine[i]));
  if (differ.length > 0) {
    const w = world as World;
    throw new DistributedError(
      `${what} differs between ranks (rank ${w.rank} vs rank ${differ[0]?.r}): every rank must be given the same ` +
        'options and network',
      differ[0]?.r,
    );
  }
}
