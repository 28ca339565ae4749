// The progress line of long jobs: what its count and its clocks say.
import { describe, expect, it } from 'vitest';
import { formatSeconds, progressLine } from '../lib/jobs/progress.js';

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
