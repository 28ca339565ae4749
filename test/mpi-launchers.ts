// The MPI launchers the distributed tests run under (docs/distributed.md), each with the libdnft_mpi.so of its MPI.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tempFolder } from './helpers.js';

export const MPICH_LIBRARY = resolve('build/mpi-mpich/libdnft_mpi.so');

/** Where scripts/slurm-local.sh keeps the one-host Slurm of the tests (its ports are fixed anyway). */
export const SLURM_DIR = '/tmp/dnft-slurm';

interface Launcher {
  /** The launcher and its options, before the per-program rank count `ranks` N (a `:` separates MPMD programs). */
  command: string[];
  ranks: string;
  env: NodeJS.ProcessEnv;
  /** How the launcher reports rank 1 killed by SIGKILL. */
  killed: RegExp;
}

// Open MPI's session directories, one per read of its `env`: two mpiruns started at once (a test's launches two at a
// time, or the CPU and simulated-GPU test passes side by side) raced to create the shared /tmp/ompi.<host>.<uid>
// ("mkdir … File exists", orte_init failed) in 1 of 24 launches of a CI run.
const ompiSessions = tempFolder('ompi-sessions');
let sessions = 0;

export const LAUNCHERS = {
  'Open MPI': {
    command: ['mpirun', '--oversubscribe'],
    ranks: '-np',
    get env(): NodeJS.ProcessEnv {
      const session = join(ompiSessions, String(sessions++));
      mkdirSync(session);
      const root = { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };
      return { ...process.env, ...root, OMPI_MCA_orte_tmpdir_base: session };
    },
    killed: /rank 1 .*(signal 9|Killed)/,
  },
  MPICH: {
    command: ['mpiexec.mpich'],
    ranks: '-n',
    // UCX's memory hooks off (docs/distributed.md, "Not done or not verified").
    env: { ...process.env, DNFT_MPI_LIBRARY: MPICH_LIBRARY, UCX_MEM_EVENTS: 'no' },
    killed: /EXIT STRING: Killed \(signal 9\)/,
  },
  // Open MPI's library, its ranks wired up by Slurm's PMIx; --overcommit: more tasks than the node's cores.
  Slurm: {
    command: ['srun', '--mpi=pmix', '--overcommit'],
    ranks: '-n',
    env: { ...process.env, SLURM_CONF: join(SLURM_DIR, 'slurm.conf') },
    killed: /task 1: Killed/,
  },
} satisfies Record<string, Launcher>;

export type LauncherName = keyof typeof LAUNCHERS;

/** The command line that starts `ranks` copies of `program`. */
export function launch(name: LauncherName, ranks: number, program: string[]): string[] {
  const { command, ranks: flag } = LAUNCHERS[name];
  return [...command, flag, String(ranks), ...program];
}

/** The launchers that start a different program on each rank (`mpirun A : B`); srun is not one of them. */
export const MPMD_LAUNCHERS = ['Open MPI', 'MPICH'] as const;
export type MpmdLauncher = (typeof MPMD_LAUNCHERS)[number];

/** The command line that starts one rank of each program, in rank order. */
export function launchEach(name: MpmdLauncher, programs: string[][]): string[] {
  const { command, ranks: flag } = LAUNCHERS[name];
  return [...command, ...programs.flatMap((program, i) => [...(i > 0 ? [':'] : []), flag, '1', ...program])];
}
