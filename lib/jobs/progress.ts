// A progress line for long jobs: a bar, the count, the wall-clock and the time left, redrawn in place on a terminal
// and printed every tenth of the way otherwise (logs, CI).

/** What a job counts: optimiser steps, epochs, seconds of training (which exclude evaluations), or images read. */
export type ProgressUnit = 'steps' | 'epochs' | 'seconds' | 'images';

export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #unit: ProgressUnit;
  readonly #started = performance.now();
  readonly #tty = process.stderr.isTTY === true;
  #lastPrinted = -1;

  constructor(label: string, total: number, unit: ProgressUnit) {
    this.#label = label;
    this.#total = Math.max(1, total);
    this.#unit = unit;
  }

  /** Shows `done` of the total, with a short status text. */
  update(done: number, status = ''): void {
    const tenth = Math.floor(Math.min(1, done / this.#total) * 10);
    if (!this.#tty && tenth === this.#lastPrinted && done < this.#total) return;
    this.#lastPrinted = tenth;
    const wall = (performance.now() - this.#started) / 1000;
    const line = progressLine(this.#label, done, this.#total, this.#unit, wall, status);
    const columns = process.stderr.columns ?? 100;
    if (this.#tty) process.stderr.write(`\r${line.padEnd(columns).slice(0, columns - 1)}`);
    else process.stderr.write(`${line}\n`);
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
): string {
  const fraction = Math.min(1, done / total);
  const left = fraction > 0 ? (wallSeconds / fraction) * (1 - fraction) : Number.NaN;
  const width = 24;
  const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
  const count =
    unit === 'seconds'
      ? `${formatSeconds(done)}/${formatSeconds(total)} of training, ${formatSeconds(wallSeconds)} wall`
      : `${unit} ${done}/${total}, ${formatSeconds(wallSeconds)}`;
  const eta = Number.isFinite(left) ? formatSeconds(left) : '?';
  return `${label} [${bar}] ${count}, ${eta} left${status ? ` ${status}` : ''}`;
}

/** 75 → "1m15s". */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60
    ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
