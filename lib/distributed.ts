// Data parallelism over MPI (docs/distributed.md): the world of this process, opened once through libdnft_mpi.so,
// which `npm run build:mpi` builds against the local MPI. A process that is not distributed never touches MPI.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, DistributedError } from './errors.js';
import { native } from './native.js';

/**
 * The `distributed` option of the trainers: true, false, or settings; absent: on under an MPI launcher. `timeout`:
 * seconds a collective may wait before the job is aborted (600); `checkEvery`: compare a hash of every parameter set
 * across the ranks every this many epochs, a debugging aid (0: never).
 */
export type DistributedOption = boolean | { timeout?: number; checkEvery?: number };

/** This process's place in the job. */
export interface World {
  rank: number;
  size: number;
  /** Epochs between parameter checks (0: none). */
  checkEvery: number;
}

let world: World | undefined;

/** The world size an MPI launcher gave this process; 1 without one. */
function launcherSize(): number {
  const env = process.env;
  // Open MPI's mpirun; MPICH's Hydra mpiexec and `srun --mpi=pmi2`; `srun --mpi=pmix`, whose PMIx names the rank
  // only (PMIX_RANK), with Slurm's task count of the step.
  const pmix = env.PMIX_RANK !== undefined ? env.SLURM_STEP_NUM_TASKS : undefined;
  const size = Number(env.OMPI_COMM_WORLD_SIZE ?? env.PMI_SIZE ?? pmix ?? 1);
  return Number.isInteger(size) && size > 0 ? size : 1;
}

/** Whether an MPI launcher started this process with more than one rank. */
export function launchedByMpi(): boolean {
  return launcherSize() > 1;
}

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
    throw new TypeError(`${what} must be a boolean or { timeout, checkEvery }`);
  }
  const settings = (typeof option === 'object' ? option : {}) as { timeout?: unknown; checkEvery?: unknown };
  const timeout = settings.timeout ?? 600;
  if (typeof timeout !== 'number' || !(timeout >= 0)) throw new RangeError(`${what}.timeout must be seconds ≥ 0`);
  const checkEvery = settings.checkEvery ?? 0;
  if (!Number.isSafeInteger(checkEvery) || (checkEvery as number) < 0) {
    throw new RangeError(`${what}.checkEvery must be an integer ≥ 0`);
  }
  if (world !== undefined) return { ...world, checkEvery: checkEvery as number };
  const path = mpiLibraryPath();
  if (!existsSync(path)) {
    throw new BackendError(
      `${what}: distributed training needs ${path}; build it against your MPI with \`npm run build:mpi\` ` +
        '(needs an MPI such as Open MPI: apt-get install openmpi-bin libopenmpi-dev), or set DNFT_MPI_LIBRARY',
    );
  }
  const opened = native().mpiOpen(path, timeout);
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
  world = { ...opened, checkEvery: 0 };
  return { ...world, checkEvery: checkEvery as number };
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
