// The native thread pool's default size: the CPUs the process may run on (native/cpu/thread_pool.cpp), so that a rank
// bound to one core by its launcher, or a process under taskset, does not start more threads than it has cores.
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';

/** backendInfo().threads of a fresh process started by `prefix` (e.g. taskset), with `env` added. */
function threadsOf(prefix: string[], env: Record<string, string> = {}): number {
  const script = "import { backendInfo } from './dist/lib/index.js'; console.log(backendInfo().threads);";
  const argv = [...prefix, process.execPath, '--input-type=module', '-e', script];
  const base = { ...process.env };
  delete base.DNFT_NUM_THREADS;
  const out = execFileSync(argv[0] as string, argv.slice(1), { env: { ...base, ...env }, encoding: 'utf8' });
  return Number(out.trim());
}

describe('the thread pool by default', () => {
  it('has one thread per CPU the process may run on', () => {
    expect(threadsOf([])).toBe(availableParallelism());
    expect(threadsOf(['taskset', '-c', '0'])).toBe(1);
  });

  it('has DNFT_NUM_THREADS threads when that is set, whatever the affinity', () => {
    expect(threadsOf(['taskset', '-c', '0'], { DNFT_NUM_THREADS: '3' })).toBe(3);
  });
});
