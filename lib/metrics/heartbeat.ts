// Whether the process writing a run is still there (docs/dashboard.md, "Live, finished or stopped"). The writer holds
// heartbeat.json in the run folder: its pid, its host and a beat count that it rewrites every period, the file
// removed when the log closes or the process exits. A reader on the writer's host asks the operating system whether
// that pid lives, which sees a kill -9 at once; a reader on another host (a shared or NFS folder) sees whether the
// beat still advances, timed by its own clock only, so that clocks that disagree between hosts do not matter.
import { unlinkSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processExists, removeStaleTemporaries, temporaryPath } from '../core/files.js';
import { readGuardedText } from '../core/read-file.js';

/** The heartbeat's file in a run folder. */
export const HEARTBEAT_FILE = 'heartbeat.json';
/** How often the writer beats. */
export const HEARTBEAT_PERIOD_MS = 2000;
// A beat that has not advanced for this many periods is a writer gone: a period is a rewrite of a small file, and
// a busy event loop (a synchronous reward, a chart rendered) delays one by seconds, not by half a minute.
const STALE_PERIODS = 15;

/** What heartbeat.json holds. */
export interface Heartbeat {
  /** The writer's process id, on `host`. */
  pid: number;
  /** The writer's host name (os.hostname()). */
  host: string;
  /** Beats so far: it advances every `periodMs` while the writer lives. */
  beat: number;
  /** The writer's period in milliseconds. */
  periodMs: number;
}

/** The writer's side: beats until stop(), or removes the file as the process exits. */
export class HeartbeatWriter {
  readonly #path: string;
  readonly #timer: NodeJS.Timeout;
  readonly #onExit = () => {
    try {
      unlinkSync(this.#path);
    } catch {
      // already gone
    }
  };
  #beat = 0;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.#path = path;
    // unref: the heartbeat alone does not keep a process alive.
    this.#timer = setInterval(() => this.#write(), HEARTBEAT_PERIOD_MS).unref();
    process.on('exit', this.#onExit);
  }

  /** Starts beating into `dir` (which exists); the first beat is on disk when this resolves. */
  static async start(dir: string): Promise<HeartbeatWriter> {
    const path = join(dir, HEARTBEAT_FILE);
    await removeStaleTemporaries(path);
    const writer = new HeartbeatWriter(path);
    await writer.#write();
    return writer;
  }

  #write(): Promise<void> {
    const heartbeat: Heartbeat = {
      pid: process.pid,
      host: hostname(),
      beat: this.#beat++,
      periodMs: HEARTBEAT_PERIOD_MS,
    };
    // One write at a time; a folder removed under the run ends nothing but the beat.
    this.#writing = this.#writing.then(() => this.#replace(JSON.stringify(heartbeat)).catch(() => {}));
    return this.#writing;
  }

  // Whole or not at all (a temporary file renamed over the heartbeat), but not flushed to disk: a beat that a power
  // cut loses says nothing wrong, and a flush every period would cost a busy disk.
  async #replace(text: string): Promise<void> {
    const temporary = temporaryPath(this.#path);
    try {
      await writeFile(temporary, text);
      await rename(temporary, this.#path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  /** Stops beating and removes the file. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    process.off('exit', this.#onExit);
    await this.#writing;
    await rm(this.#path, { force: true });
  }
}

function parseHeartbeat(text: string): Heartbeat | undefined {
  try {
    const h = JSON.parse(text) as Partial<Heartbeat>;
    const ok =
      Number.isSafeInteger(h.pid) &&
      typeof h.host === 'string' &&
      Number.isSafeInteger(h.beat) &&
      typeof h.periodMs === 'number' &&
      h.periodMs > 0;
    return ok ? (h as Heartbeat) : undefined;
  } catch {
    return undefined;
  }
}

/** The reader's side: remembers when it last saw each folder's beat advance. */
export class LivenessReader {
  readonly #seen = new Map<string, { host: string; pid: number; beat: number; at: number }>();
  readonly #now: () => number;

  /** `now` is the reader's clock in milliseconds (performance.now by default). */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /**
   * Whether a process holds the run in `dir`: false without a readable heartbeat (none was written, or its writer
   * closed or exited), else whether its pid exists (same host) or its beat advanced in the last 15 periods.
   */
  async alive(dir: string): Promise<boolean> {
    const text = await readGuardedText(join(dir, HEARTBEAT_FILE), 'config').catch(() => undefined);
    const h = text === undefined ? undefined : parseHeartbeat(text);
    if (h === undefined) {
      this.#seen.delete(dir);
      return false;
    }
    if (h.host === hostname()) return processExists(h.pid);
    const now = this.#now();
    const last = this.#seen.get(dir);
    if (last === undefined || last.host !== h.host || last.pid !== h.pid || last.beat !== h.beat) {
      this.#seen.set(dir, { host: h.host, pid: h.pid, beat: h.beat, at: now });
      return true;
    }
    return now - last.at < STALE_PERIODS * h.periodMs;
  }
}
