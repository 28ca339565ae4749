// The runs a dashboard shows: the folders it was given, or the run folders inside one (a B4 results folder), and a
// snapshot of each (its metrics records and config) with a key that changes when its files do.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FileReadError, readGuardedText } from '../core/read-file.js';
import { LEGACY_METRICS_FILE, METRICS_FILE, type MetricsRecord, salvageRunRecords } from '../metrics/records.js';
import { placeOf } from './files.js';

/** What the page gets of a run. */
export interface RunSnapshot {
  id: number;
  name: string;
  dir: string;
  records: MetricsRecord[];
  config: unknown;
  /** Why the records could not be read, if so. */
  error?: string;
}

const RUN_FILES = [METRICS_FILE, LEGACY_METRICS_FILE, 'config.json'];

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function isRun(dir: string): Promise<boolean> {
  for (const file of RUN_FILES) if (await exists(join(dir, file))) return true;
  return false;
}

/**
 * The run folders of the given folders, each resolved: a folder holding metrics is a run; one that holds none but
 * has run folders inside stands for them (sorted by name); any other (a run that has not written yet) is a run.
 */
export async function findRuns(folders: readonly string[]): Promise<string[]> {
  const runs: string[] = [];
  for (const folder of folders.map((f) => resolve(f))) {
    if (await isRun(folder)) {
      runs.push(folder);
      continue;
    }
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    const inside: string[] = [];
    for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
      if (await isRun(join(folder, entry.name))) inside.push(join(folder, entry.name));
    }
    runs.push(...(inside.length > 0 ? inside : [folder]));
  }
  return [...new Set(runs)];
}

/** Display names: the folder's name, with its parent's where two runs share one. */
export function runNames(dirs: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const dir of dirs) counts.set(basename(dir), (counts.get(basename(dir)) ?? 0) + 1);
  return dirs.map((dir) =>
    (counts.get(basename(dir)) ?? 0) > 1 ? `${basename(dirname(dir))}/${basename(dir)}` : basename(dir),
  );
}

/** A key of the run's files (sizes and modification times): a snapshot is taken again when it changes. */
export async function runKey(dir: string): Promise<string> {
  const parts = await Promise.all(
    RUN_FILES.map((file) =>
      stat(join(dir, file)).then(
        (s) => `${s.size}:${s.mtimeMs}`,
        () => '-',
      ),
    ),
  );
  return parts.join('|');
}

// The records with each sample grid whose image is missing left out: a results folder keeps the records but not
// the grids (docs/benchmarks.md), and the page shows only grids it can load.
async function withExistingGrids(dir: string, records: MetricsRecord[]): Promise<MetricsRecord[]> {
  return Promise.all(
    records.map(async (record) => {
      if (record.kind !== 'evaluation' || record.grid === undefined) return record;
      if (await exists(join(dir, record.grid.image))) return record;
      const { grid: _missing, ...rest } = record;
      return rest;
    }),
  );
}

/**
 * The run's records and config now; what could not be read is said in `error`. A run file whose real path leaves
 * the run folder (a symlink) or that is not a regular file (a FIFO) is not read.
 */
export async function snapshot(id: number, name: string, dir: string): Promise<RunSnapshot> {
  const problems: string[] = [];
  const unread = new Set<string>(); // run files not to read
  for (const file of RUN_FILES) {
    const place = await placeOf(dir, join(dir, file));
    // A run file that is not a regular file (a FIFO would make a reader wait on its writer) is not read.
    const regular = place !== 'inside' || (await stat(join(dir, file)).then((info) => info.isFile()));
    if (place !== 'outside' && regular) continue;
    unread.add(file);
    problems.push(`${join(dir, file)} ${regular ? 'leads outside the run folder' : 'is not a regular file'}: not read`);
  }
  let config: unknown = null;
  const configPath = join(dir, 'config.json');
  try {
    if (!unread.has('config.json')) config = JSON.parse(await readGuardedText(configPath, 'config'));
  } catch (error) {
    // A run without a config.json is fine; any other failure is the run's problem to show.
    if (!(error instanceof FileReadError && error.reason === 'missing')) {
      const message = (error as Error).message;
      problems.push(message.startsWith(configPath) ? message : `${configPath}: ${message}`);
    }
  }
  let records: MetricsRecord[] = [];
  try {
    if (!unread.has(METRICS_FILE) && !unread.has(LEGACY_METRICS_FILE)) {
      // The readable records show; each line that is not one is named in the run's error.
      const salvaged = await salvageRunRecords(dir);
      records = await withExistingGrids(dir, salvaged.records);
      for (const bad of salvaged.rejected.slice(0, 10))
        problems.push(`${salvaged.path} line ${bad.line}: ${bad.problem}`);
    }
  } catch (error) {
    problems.push((error as Error).message);
  }
  return { id, name, dir, records, config, ...(problems.length > 0 ? { error: problems.join('; ') } : {}) };
}
