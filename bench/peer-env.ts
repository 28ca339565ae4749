// The PyTorch peer's process environment: its BLAS at its best, and the kernel OpenBLAS chose read back.

/**
 * Variables some machines set to hold OpenBLAS to an older kernel (a guard for old OpenBLAS builds): with them
 * PyTorch's OpenBLAS runs its AVX2 Haswell kernel on AVX-512 CPUs. The peer's process runs without them; our side,
 * and the tests, keep the environment they were given.
 */
const HOLDS_BACK_OPENBLAS = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];

/** The peer's environment: `threads` OpenMP threads, OpenBLAS free to pick its kernel and asked to name it. */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_VERBOSE: '2' };
  for (const name of HOLDS_BACK_OPENBLAS) delete env[name];
  return env;
}

/** The kernel OpenBLAS named on stderr under OPENBLAS_VERBOSE=2 ("Core: Cooperlake"); null when it named none. */
export function openblasCore(stderr: string): string | null {
  return stderr.match(/^Core: (\S+)/m)?.[1] ?? null;
}
