// Failures that used to kill or hang the process, each run in a child process (test/reliability/scenarios.mjs on
// the compiled dist/): a crash, an unhandled rejection or a deadlock fails the test instead of the test runner.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function scenario(name: string): Record<string, unknown> & unknown[] {
  const run = spawnSync(process.execPath, ['test/reliability/scenarios.mjs', name], {
    encoding: 'utf8',
    timeout: 100_000,
    env: { ...process.env, DNFT_NUM_THREADS: '2' },
  });
  expect(run.signal, `${name} was killed (a hang?)\n${run.stderr}`).toBeNull();
  expect(run.status, `${name} exited with ${run.status}\n${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout.trim().split('\n').at(-1) as string);
}

describe('reliability: scenarios in a child process', () => {
  it('a reward that throws, rejects or miscounts in a later chunk reaches the caller wrapped; model unchanged, epoch retryable', () => {
    const results = scenario('rewardFailures') as unknown as {
      kind: string;
      what: string;
      call: string;
      error: { name: string; message: string; reward: string; cause?: string };
      isRewardError: boolean;
      unchanged: boolean;
      retried: boolean;
    }[];
    expect(results).toHaveLength(12);
    for (const r of results) {
      const label = `${r.kind} ${r.what} ${r.call}`;
      expect(r.isRewardError, label).toBe(true);
      expect(r.error.reward, label).toBe('judge');
      expect(r.error.message, label).toMatch(/^reward 'judge' /);
      if (r.what !== 'wrong length') expect(r.error.cause, label).toMatch(/scorer (crashed|rejected)/);
      expect(r.unchanged, label).toBe(true);
      expect(r.retried, label).toBe(true);
    }
  });

  it('a reward that never answers ends at rewardTimeout; rewardRetries repeats the call', () => {
    const r = scenario('rewardTimeout');
    expect(r.isRewardError).toBe(true);
    expect((r.error as { message: string }).message).toMatch(/gave no answer within 100 ms/);
    expect(r.waited).toBeLessThan(5000);
    expect(r.retried).toBe(1);
    expect(r.attempts).toBe(5);
  });

  it('setThreads while a native call runs is refused with BusyError instead of deadlocking', () => {
    const r = scenario('setThreadsDuringWork');
    expect(r.results).toEqual(['busy', 'busy', 'busy', 'busy', 'busy']);
    expect(r.finite).toBe(true);
  });

  it('the addon in four worker threads at once, each training its own model, matches sequential training', () => {
    expect(scenario('workers').equal).toEqual([true, true, true, true]);
  });

  it('dispose() right after steps were started lets them finish; later calls are DisposedErrors', () => {
    const r = scenario('disposeDuringStep');
    expect(r.settled).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(r.after).toBe(true);
    expect(r.syncAfter).toBe(true);
  });
});
