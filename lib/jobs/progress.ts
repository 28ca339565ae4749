// A progress line for long jobs: a bar, the count, the wall-clock and the time left, redrawn in place on a terminal
// and printed every tenth of the way otherwise (logs, CI).

/**
 * What a job counts: optimiser steps, epochs, seconds of training (which exclude evaluations), images read, or
 * samples drawn.
 */
export type ProgressUnit = 'steps' | 'epochs' | 'seconds' | 'images' | 'samples';

export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #unit: ProgressUnit;
  readonly #now: () => number;
  readonly #started: number;
  readonly #tty = process.stderr.isTTY === true;
  #lastPrinted = -1;
  // The first update's count and wall-clock: the rate is measured from there, so the start-up and the first
  // epoch's warm-up do not weigh on every later estimate.
  #first: { done: number; wall: number } | undefined;

  /** `now` gives milliseconds (a test's fake clock). */
  constructor(label: string, total: number, unit: ProgressUnit, now: () => number = () => performance.now()) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#unit = unit;
    this.#now = now;
    this.#started = now();
  }

  /**
   * Seconds left: the count left times the wall-clock per unit since the first update (evaluations between
   * updates included, so on average). Counting seconds of training, at least the training left.
   */
  #left(done: number, wall: number): number {
    const first = this.#first;
    const span = first === undefined ? 0 : done - first.done;
    const remaining = Math.max(0, this.#total - done);
    if (span <= 0 || first === undefined) {
      if (this.#unit === 'seconds') return remaining;
      return done > 0 ? (remaining * wall) / done : Number.NaN;
    }
    const rate = (wall - first.wall) / span;
    return remaining * (this.#unit === 'seconds' ? Math.max(1, rate) : rate);
  }

  /** Shows `done` of the total, with a short status text; returns the estimated wall-clock seconds left (NaN: unknown). */
  update(done: number, status = ''): number {
    const tenth = Math.floor(Math.min(1, done / this.#total) * 10);
    const wall = (this.#now() - this.#started) / 1000;
    const left = this.#left(done, wall);
    this.#first ??= { done, wall };
    if (!this.#tty && tenth === this.#lastPrinted && done < this.#total) return left;
    this.#lastPrinted = tenth;
    const line = progressLine(this.#label, done, this.#total, this.#unit, wall, status, left);
    const columns = process.stderr.columns ?? 100;
    if (this.#tty) process.stderr.write(`\r${line.padEnd(columns).slice(0, columns - 1)}`);
    else process.stderr.write(`${line}\n`);
    return left;
  }

  /** Ends the line. */
  done(): void {
    if (this.#tty) process.stderr.write('\n');
  }
}

/**
 * One progress line. Counting seconds of training, both clocks show: the count (which may pass the total by the last
 * epoch) and the wall-clock since the start, evaluations included, e.g.
 * `nft [########################] 10m10s/10m00s of training, 13m24s wall, 0s left reward 0.431`.
 */
export function progressLine(
  label: string,
  done: number,
  total: number,
  unit: ProgressUnit,
  wallSeconds: number,
  status = '',
  leftSeconds?: number,
): string {
  const fraction = Math.min(1, done / total);
  const left = leftSeconds ?? (fraction > 0 ? (wallSeconds / fraction) * (1 - fraction) : Number.NaN);
  const width = 24;
  const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
  const count =
    unit === 'seconds'
      ? `${formatSeconds(done)}/${formatSeconds(total)} of training, ${formatSeconds(wallSeconds)} wall`
      : `${unit} ${done}/${total}, ${formatSeconds(wallSeconds)}`;
  const eta = Number.isFinite(left) ? formatSeconds(left) : '?';
  return `${label} [${bar}] ${count}, ${eta} left${status ? ` ${status}` : ''}`;
}

/**
 * The `(done, total)` callback of a phase that reports its progress (an evaluation, a sample grid): a progress line
 * labelled `label`, started at the first call and ended when `done` reaches the total.
 */
export function progressReporter(label: string, unit: ProgressUnit): (done: number, total: number) => void {
  let line: Progress | undefined;
  return (done, total) => {
    line ??= new Progress(label, total, unit);
    line.update(done);
    if (done >= total) line.done();
  };
}

/** "1 minute", "6 minutes", "0.5 minutes". */
export function plural(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/** 75 → "1m15s". */
export function formatSeconds(seconds: number): string {
  // Rounded first, so a carry reaches the minutes (119.6 s is 2m00s, not 1m60s).
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  const m = Math.floor(whole / 60);
  return m < 60
    ? `${m}m${String(whole % 60).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
