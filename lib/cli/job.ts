// What the commands that run jobs share: which process reports under MPI, Ctrl-C, and an evaluation's line.
import type * as shapes from '../tasks/shapes/index.js';
import { openWorld } from '../training/distributed.js';

/**
 * Whether this process reports the job: under an MPI launcher (docs/distributed.md) it opens the world the trainers
 * then share, and only rank 0 prints and writes; in one process, always.
 */
export function reports(what: string, distributed: unknown): boolean {
  return (openWorld(what, distributed)?.rank ?? 0) === 0;
}

/** An AbortSignal that Ctrl-C (SIGINT) trips once, saying what happens next; a second Ctrl-C exits at once. */
export function interruptible(then = 'finishing the current step and saving a checkpoint'): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error(`\ninterrupted: ${then} (Ctrl-C again to quit now)`);
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return controller.signal;
}

export function printEvaluation(label: string, e: shapes.ShapesEvaluation): void {
  const cats = Object.entries(e.byCategory)
    .map(([k, v]) => `${k} ${(v as number).toFixed(2)}`)
    .join(', ');
  console.log(
    `${label}: strict ${e.overall.toFixed(3)} (${cats}); reward ${e.reward.toFixed(3)}; ${e.samples} samples`,
  );
}
