// A progress line for long jobs: a bar, the count, the rate and the time left, redrawn in place on a terminal and
// printed every tenth of the way otherwise (logs, CI).
export class Progress {
  readonly #total: number;
  readonly #label: string;
  readonly #started = performance.now();
  readonly #tty = process.stderr.isTTY === true;
  #lastPrinted = -1;

  constructor(label: string, total: number) {
    this.#label = label;
    this.#total = Math.max(1, total);
  }

  /** Shows `done` of the total, with a short status text. */
  update(done: number, status = ''): void {
    const fraction = Math.min(1, done / this.#total);
    const tenth = Math.floor(fraction * 10);
    if (!this.#tty && tenth === this.#lastPrinted && done < this.#total) return;
    this.#lastPrinted = tenth;
    const seconds = (performance.now() - this.#started) / 1000;
    const left = fraction > 0 ? (seconds / fraction) * (1 - fraction) : Number.NaN;
    const width = 24;
    const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
    const line = `${this.#label} [${bar}] ${done}/${this.#total} ${formatSeconds(seconds)} elapsed, ${Number.isFinite(left) ? formatSeconds(left) : '?'} left ${status}`;
    if (this.#tty)
      process.stderr.write(
        `\r${line.padEnd(process.stderr.columns ?? 100).slice(0, (process.stderr.columns ?? 100) - 1)}`,
      );
    else process.stderr.write(`${line}\n`);
  }

  /** Ends the line. */
  done(): void {
    if (this.#tty) process.stderr.write('\n');
  }
}

/** 75 → "1m15s". */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60
    ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
