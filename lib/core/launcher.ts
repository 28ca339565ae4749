// What an MPI launcher tells a process through its environment (docs/distributed.md): the world size and the
// process's rank on its host, read without touching MPI; the network takes its default GPU from them.

/** The world size an MPI launcher gave this process; 1 without one. */
export function launcherSize(env: NodeJS.ProcessEnv = process.env): number {
  // Open MPI's mpirun; MPICH's Hydra mpiexec and `srun --mpi=pmi2`; `srun --mpi=pmix`, whose PMIx names the rank
  // only (PMIX_RANK), with Slurm's task count of the step.
  const pmix = env.PMIX_RANK !== undefined ? env.SLURM_STEP_NUM_TASKS : undefined;
  const size = Number(env.OMPI_COMM_WORLD_SIZE ?? env.PMI_SIZE ?? pmix ?? 1);
  return Number.isInteger(size) && size > 0 ? size : 1;
}

/** Whether an MPI launcher started this process with more than one rank. */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  return launcherSize(env) > 1;
}

// Where launchers put a process's rank among the processes of its host: Open MPI, MPICH and Intel MPI (Hydra),
// MVAPICH2, Slurm's srun, HPE/Cray PALS. The first one set wins.
const LOCAL_RANK_VARIABLES = [
  'OMPI_COMM_WORLD_LOCAL_RANK',
  'MPI_LOCALRANKID',
  'MV2_COMM_WORLD_LOCAL_RANK',
  'SLURM_LOCALID',
  'PALS_LOCAL_RANKID',
  'PMI_LOCAL_RANK',
] as const;

/** This process's rank among the processes of its host, as the launcher says; undefined when none says. */
export function localRank(env: NodeJS.ProcessEnv = process.env): number | undefined {
  for (const name of LOCAL_RANK_VARIABLES) {
    const value = env[name];
    if (value !== undefined && /^\d+$/.test(value.trim())) return Number(value);
  }
  return undefined;
}

/**
 * The GPU a process takes when VelocityNet.create is given none: under an MPI launcher its local rank modulo the
 * GPUs it sees, so that the ranks of one host spread over its GPUs (NCCL refuses two ranks on one GPU), else 0.
 */
export function defaultGpu(deviceCount: number, env: NodeJS.ProcessEnv = process.env): number {
  if (deviceCount < 1 || !launchedByMpi(env)) return 0;
  return (localRank(env) ?? 0) % deviceCount;
}
