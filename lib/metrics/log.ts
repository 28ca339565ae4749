// Writing a run's metrics stream: metrics.jsonl appended a line at a time (each line reaches the file as it is
// written, so another process can follow it), the sample grid of each evaluation, and the run's resolved config.
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/files.js';
import { HeartbeatWriter } from './heartbeat.js';
import {
  type EpochRecord,
  type EpochSeconds,
  type EvaluationRecord,
  METRICS_FILE,
  METRICS_VERSION,
  MetricsFormatError,
  type MetricsRecord,
  type ProgressRecord,
  type ReferenceRecord,
  type RejectedLine,
  readRunRecords,
  salvageRunRecords,
} from './records.js';

/** What a trainer reports of an epoch: its EpochStats (lib/training/online-options.ts) and the method's own. */
export type EpochFields = Omit<EpochRecord, 'kind' | 'version' | 'time' | 'elapsed' | 'samplesPerSecond'> & {
  /** Epochs completed, this one included. */
  epoch: number;
  /** Rollouts of the epoch. */
  samples: number;
  /** Where the epoch's time went. */
  seconds: EpochSeconds;
};

/** Receives each record as it is made (awaited before the run goes on). */
export type RecordHook = (record: MetricsRecord) => void | Promise<void>;

/** Options of MetricsLog.open. */
export interface MetricsLogOptions {
  /** The run folder: metrics.jsonl, config.json and samples/ go here. Without it, records only go to `onRecord`. */
  dir?: string;
  /** The folder of the run being resumed (default `dir`): its records up to `epoch` start the new file. */
  from?: string;
  /** Epochs the trainer has completed: 0 starts a new stream, more continues the earlier one to that epoch. */
  epoch: number;
  /** The trainer's name for the start record. */
  trainer: string;
  /**
   * Called with a MetricsFormatError saying what of the earlier records could not be read: the lines that are not
   * records are left out and written to `metrics.jsonl.rejected-<time>` in `dir`, the others kept; a file that
   * cannot be read at all is dropped. Default: throw that error, and write nothing.
   */
  onUnreadable?: (error: MetricsFormatError) => void;
  /** The run's resolved configuration, written to config.json. */
  config?: unknown;
  /** Receives each record as it is made. */
  onRecord?: RecordHook;
}

/** What an evaluation scored, for its record. */
export type EvaluationScores = Pick<
  EvaluationRecord,
  'reward' | 'rewards' | 'samples' | 'strict' | 'categories' | 'standardError' | 'guided'
>;

/** What a reference score's record holds. */
export type ReferenceScores = Pick<ReferenceRecord, 'label' | 'reward' | 'strict' | 'samples' | 'standardError'>;

/** What a progress record holds. */
export type ProgressFields = Pick<ProgressRecord, 'phase' | 'target' | 'secondsLeft'>;

/** A sample grid to write with an evaluation: the PNG and the prompt of each row. */
export interface SampleGrid {
  /** The PNG file's bytes. */
  png: Uint8Array;
  /** The prompt of each row, top to bottom. */
  prompts: string[];
}

/** The path of the sample grid after `epoch` epochs, relative to the run folder. */
export function gridPath(epoch: number): string {
  return `samples/epoch-${String(epoch).padStart(4, '0')}.png`;
}

/**
 * The records of the run in `source` that a continuing run keeps: all of them (readRunRecords) without
 * `onUnreadable`; with it, the readable ones (salvageRunRecords), the rest set aside in `o.dir` and reported.
 */
async function earlierRecords(source: string, o: MetricsLogOptions): Promise<MetricsRecord[]> {
  if (o.onUnreadable === undefined) return readRunRecords(source);
  let found: Awaited<ReturnType<typeof salvageRunRecords>>;
  try {
    found = await salvageRunRecords(source);
  } catch (error) {
    if (!(error instanceof MetricsFormatError)) throw error;
    o.onUnreadable(new MetricsFormatError(`${error.message}; its records are not kept`));
    return [];
  }
  const { records, rejected, path } = found;
  if (rejected.length === 0) return records;
  let where = '';
  if (o.dir !== undefined) {
    await mkdir(o.dir, { recursive: true });
    const aside = join(o.dir, `${METRICS_FILE}.rejected-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await writeFileAtomic(aside, rejected.map((r) => `${r.text}\n`).join(''));
    where = `, set aside in ${aside}`;
  }
  const lines = rejected.length === 1 ? 'line' : 'lines';
  const first = rejected[0] as RejectedLine;
  o.onUnreadable(
    new MetricsFormatError(
      `${path}: ${rejected.length} ${lines} that are not records left out (line ${first.line}: ${first.problem})${where}; ${records.length} records kept`,
    ),
  );
  return records;
}

/**
 * A run's metrics stream: open() it, write its records, close() it. While open, with a folder, it holds the folder's
 * heartbeat (lib/metrics/heartbeat.ts), by which the dashboard tells a live run from one whose process is gone.
 */
export class MetricsLog {
  readonly #dir: string | undefined;
  readonly #onRecord: RecordHook | undefined;
  readonly #records: MetricsRecord[];
  readonly #heartbeat: HeartbeatWriter | undefined;
  #elapsed: number;

  private constructor(o: MetricsLogOptions, records: MetricsRecord[], heartbeat: HeartbeatWriter | undefined) {
    this.#dir = o.dir;
    this.#onRecord = o.onRecord;
    this.#records = records;
    this.#heartbeat = heartbeat;
    this.#elapsed = records.filter((r) => r.kind === 'epoch').at(-1)?.elapsed ?? 0;
  }

  /**
   * Opens the stream of a run: a new one at epoch 0, else the earlier records up to `epoch` (those of epochs a
   * resumed checkpoint did not reach are dropped) rewritten, then a start record.
   */
  static async open(o: MetricsLogOptions): Promise<MetricsLog> {
    const source = o.from ?? o.dir;
    const earlier = o.epoch > 0 && source !== undefined ? await earlierRecords(source, o) : [];
    const records = earlier.filter((r) => r.epoch <= o.epoch);
    let heartbeat: HeartbeatWriter | undefined;
    try {
      if (o.dir !== undefined) {
        await mkdir(join(o.dir, 'samples'), { recursive: true });
        // Before any record: a reader that sees a record without a heartbeat knows its writer has gone.
        heartbeat = await HeartbeatWriter.start(o.dir);
        await writeFileAtomic(join(o.dir, METRICS_FILE), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
        if (o.config !== undefined) {
          await writeFileAtomic(join(o.dir, 'config.json'), `${JSON.stringify(o.config, null, 2)}\n`);
        }
      }
      const log = new MetricsLog(o, records, heartbeat);
      await log.#write({ kind: 'start', ...log.#base(o.epoch), trainer: o.trainer });
      return log;
    } catch (error) {
      await heartbeat?.stop();
      throw error;
    }
  }

  /** Every record of the stream, the kept earlier ones first. */
  get records(): readonly MetricsRecord[] {
    return this.#records;
  }

  /** Training seconds since the run's start. */
  get elapsed(): number {
    return this.#elapsed;
  }

  /** The evaluation records, in order. */
  evaluations(): EvaluationRecord[] {
    return this.#records.filter((r): r is EvaluationRecord => r.kind === 'evaluation');
  }

  /** Writes an epoch's record: all its statistics, with the run's training seconds and the samples per second. */
  async epoch(stats: EpochFields): Promise<EpochRecord> {
    this.#elapsed += stats.seconds.total;
    const samplesPerSecond = stats.samples / Math.max(stats.seconds.total, 1e-9);
    const record: EpochRecord = { kind: 'epoch', ...this.#base(stats.epoch), ...stats, samplesPerSecond };
    await this.#write(record);
    return record;
  }

  /** Writes an evaluation's record, and its sample grid (to samples/epoch-NNNN.png) when one is given. */
  async evaluation(epoch: number, scores: EvaluationScores, grid?: SampleGrid): Promise<EvaluationRecord> {
    const record: EvaluationRecord = { kind: 'evaluation', ...this.#base(epoch), ...scores };
    if (grid !== undefined && this.#dir !== undefined) {
      await writeFileAtomic(join(this.#dir, gridPath(epoch)), grid.png);
      record.grid = { image: gridPath(epoch), prompts: grid.prompts };
    }
    await this.#write(record);
    return record;
  }

  /** Writes where the job is (a phase that starts, or the progress after an epoch) at the current epoch. */
  async progress(epoch: number, fields: ProgressFields): Promise<ProgressRecord> {
    const record: ProgressRecord = { kind: 'progress', ...this.#base(epoch), ...fields };
    await this.#write(record);
    return record;
  }

  /** Writes a score the run is measured against, e.g. its base model's. */
  async reference(epoch: number, scores: ReferenceScores): Promise<ReferenceRecord> {
    const record: ReferenceRecord = { kind: 'reference', ...this.#base(epoch), ...scores };
    await this.#write(record);
    return record;
  }

  /** Ends the stream: the heartbeat stops and its file goes (a run that ended cleanly wrote its last record first). */
  async close(): Promise<void> {
    await this.#heartbeat?.stop();
  }

  #base(epoch: number) {
    return { version: METRICS_VERSION, epoch, time: new Date().toISOString(), elapsed: this.#elapsed };
  }

  async #write(record: MetricsRecord): Promise<void> {
    this.#records.push(record);
    // One unbuffered append per line: a follower sees whole lines, or a last one still without its newline.
    if (this.#dir !== undefined) await appendFile(join(this.#dir, METRICS_FILE), `${JSON.stringify(record)}\n`);
    await this.#onRecord?.(record);
  }
}
