// The progress line of long jobs: what its count and its clocks say.
import { describe, expect, it, vi } from 'vitest';
import { formatSeconds, Progress, plural, progressLine } from '../lib/jobs/progress.js';
import { epochFits } from '../lib/jobs/shapes/train.js';

describe('progressLine', () => {
  it('shows seconds of training and the wall-clock apart, past the total included', () => {
    // `train --minutes 10` after its last epoch: 610 s of training, 804 s since the start with the evaluations.
    const line = progressLine('nft', 610, 600, 'seconds', 804, 'reward 0.431');
    expect(line).toBe('nft [########################] 10m10s/10m00s of training, 13m24s wall, 0s left reward 0.431');
  });

  it('counts steps or epochs with the wall-clock and the time left', () => {
    expect(progressLine('pretrain', 25, 100, 'steps', 30)).toBe(
      'pretrain [######..................] steps 25/100, 30s, 1m30s left',
    );
    expect(progressLine('flowgrpo', 0, 10, 'epochs', 0)).toMatch(/epochs 0\/10, 0s, \? left$/);
  });

  it('formats durations', () => {
    expect([formatSeconds(59), formatSeconds(75), formatSeconds(3725)]).toEqual(['59s', '1m15s', '1h02m']);
    // Rounding carries into the minutes.
    expect([formatSeconds(59.6), formatSeconds(119.6), formatSeconds(3599.6)]).toEqual(['1m00s', '2m00s', '1h00m']);
  });
});

describe('Progress', () => {
  // The lines a Progress prints for these updates, each [count, seconds on the fake clock].
  function lines(total: number, unit: 'epochs' | 'seconds', updates: [number, number][]): string[] {
    let now = 0;
    const printed: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk).trim());
      return true;
    });
    try {
      const progress = new Progress('nft', total, unit, () => now * 1000);
      for (const [done, seconds] of updates) {
        now = seconds;
        progress.update(done);
      }
    } finally {
      write.mockRestore();
    }
    return printed.map((line) => /(\S+) left/.exec(line)?.[1] ?? line);
  }

  it('estimates the time left from the rate since the first update, not the warm-up', () => {
    // A first epoch of 60 s (warm-up), then 10 s each: 7 epochs left at 10 s, then 6.
    expect(
      lines(10, 'epochs', [
        [1, 60],
        [2, 70],
        [3, 80],
        [4, 90],
      ]),
    ).toEqual(['9m00s', '1m20s', '1m10s', '1m00s']);
  });

  it('counting seconds of training, at least the training left, then the measured wall-clock per training second', () => {
    // 15 s of training by 75 s of wall (start-up), 15 more by 95 s: 20 s of wall per 15 of training since.
    expect(
      lines(100, 'seconds', [
        [15, 75],
        [30, 95],
      ]),
    ).toEqual(['1m25s', '1m33s']);
  });
});

describe('the training budget of --minutes', () => {
  it('ends at the epoch boundary nearest to the budget, within half an epoch either way', () => {
    // 25-second epochs against a 60-second budget: after two (50 s) a third would end at 75 s, 15 s over, while
    // stopping leaves 10 s: the run stops. Against 65 s, stopping would leave 15 s, more than half an epoch: it goes on.
    expect(epochFits(50, 60, 2)).toBe(false);
    expect(epochFits(50, 65, 2)).toBe(true);
    // The first epoch runs whenever some budget is left; none once it is spent.
    expect(epochFits(0, 1, 0)).toBe(true);
    expect(epochFits(0, 0, 0)).toBe(false);
    // However long the epochs, the trained seconds end within half an epoch of the budget.
    for (const epoch of [7, 25, 40, 90]) {
      let trained = 0;
      let epochs = 0;
      while (epochFits(trained, 60, epochs)) {
        trained += epoch;
        epochs += 1;
      }
      expect(Math.abs(trained - 60), `${epoch}-second epochs`).toBeLessThanOrEqual(epoch / 2);
    }
  });

  it('says "1 minute" and "6 minutes"', () => {
    expect([plural(1, 'minute'), plural(6, 'minute'), plural(0.5, 'minute')]).toEqual([
      '1 minute',
      '6 minutes',
      '0.5 minutes',
    ]);
  });
});
