// Durable, atomic file writes: every file this package writes (checkpoints, images, reports) goes through here, and
// the sets of files written as one (a PEFT adapter folder).
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileReadError, readGuardedText } from './read-file.js';

/** Whether a process with this id exists on this host (one we may not signal exists too). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pattern of a temporary file's suffix after its target's name: `.tmp-<pid>-<12 hex digits>`. */
const TEMPORARY = /^\.tmp-([0-9]+)-[0-9a-f]{12}$/;

/** A fresh name for a temporary file beside `path` that will replace it: `<path>.tmp-<pid>-<hex>`. */
export function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Whether `name` is the name of a temporary file made by temporaryPath for a file named `target`. */
export function isTemporaryOf(name: string, target: string): boolean {
  return name.startsWith(target) && TEMPORARY.test(name.slice(target.length));
}

/**
 * Removes the temporary files `<path>.tmp-<pid>-<hex>` that writes of processes no longer running left behind (a
 * process killed mid-write cannot remove its own). Files of live processes, this one included, are kept.
 */
export async function removeStaleTemporaries(path: string): Promise<void> {
  const folder = dirname(path);
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return;
  }
  const prefix = basename(path);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(TEMPORARY.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processExists(pid)) continue;
    await rm(join(folder, name), { force: true });
  }
}

/** Writes `content` to a new file at `path` (which must not exist) and flushes it to disk. */
export async function writeFileDurable(path: string, content: Uint8Array | string): Promise<void> {
  const file = await open(path, 'wx');
  try {
    await file.writeFile(content);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Best effort: flushes a folder, making the renames in it durable (not possible on every platform). */
export async function syncFolder(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // ignored
  }
}

/**
 * Writes `content` atomically: to a uniquely named temporary file in the same folder, flushed to disk and renamed
 * over `path`, so readers see the old file or the new one, never a partial one. The temporary file is removed on
 * failure, and those of earlier writers to `path` that were killed are removed first.
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string): Promise<void> {
  await removeStaleTemporaries(path);
  const temporary = temporaryPath(path);
  try {
    await writeFileDurable(temporary, content);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncFolder(dirname(path));
}

/** The file in a folder that commits a writeFilesAtomic: which temporary file replaces which file. */
export const COMMIT_FILE = '.dnft-commit.json';

/** The commit of `folder`'s last writeFilesAtomic that has not finished: final name → temporary name. */
async function pendingCommit(folder: string): Promise<Map<string, string> | undefined> {
  let text: string;
  try {
    text = await readGuardedText(join(folder, COMMIT_FILE), 'config');
  } catch (error) {
    if (error instanceof FileReadError && error.reason === 'missing') return undefined;
    throw error;
  }
  let entries: [string, unknown][] = [];
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) entries = Object.entries(parsed);
  } catch {
    // refused below
  }
  const valid = entries.every(
    ([name, temporary]) =>
      name !== '' && !name.includes('/') && typeof temporary === 'string' && isTemporaryOf(temporary, name),
  );
  if (entries.length === 0 || !valid)
    throw new FileReadError(join(folder, COMMIT_FILE), 'unreadable', 'not a commit of writeFilesAtomic');
  return new Map(entries as [string, string][]);
}

/** Finishes a committed writeFilesAtomic of `folder` that a killed process left: the renames, then the commit's removal. */
async function finishCommit(folder: string): Promise<void> {
  let pending: Map<string, string> | undefined;
  try {
    pending = await pendingCommit(folder);
  } catch (error) {
    // Not one of ours (the name is reserved): nothing it names is trusted.
    if (!(error instanceof FileReadError) || error.reason === 'missing') throw error;
    await rm(join(folder, COMMIT_FILE), { force: true });
    return;
  }
  if (pending === undefined) return;
  for (const [name, temporary] of pending) {
    await rename(join(folder, temporary), join(folder, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // renamed already
    });
  }
  await syncFolder(folder);
  await rm(join(folder, COMMIT_FILE), { force: true });
  await syncFolder(folder);
}

/**
 * Replaces several files of `folder` (created if missing) as one: each is written to a temporary file, then a
 * commit file naming them is written atomically (the commit point), then each is renamed into place and the commit
 * removed. A process killed before the commit leaves the old files (its temporaries are removed by the next write);
 * one killed after it leaves a commit that readers follow (committedPath) and the next write finishes. Readers see
 * the old set or the new one, never a mixture.
 */
export async function writeFilesAtomic(
  folder: string,
  files: Readonly<Record<string, Uint8Array | string>>,
): Promise<void> {
  await mkdir(folder, { recursive: true });
  await finishCommit(folder);
  const temporaries = new Map<string, string>();
  try {
    for (const [name, content] of Object.entries(files)) {
      await removeStaleTemporaries(join(folder, name));
      const temporary = temporaryPath(join(folder, name));
      temporaries.set(name, basename(temporary));
      await writeFileDurable(temporary, content);
    }
    await writeFileAtomic(join(folder, COMMIT_FILE), JSON.stringify(Object.fromEntries(temporaries)));
  } catch (error) {
    for (const temporary of temporaries.values()) await rm(join(folder, temporary), { force: true });
    throw error;
  }
  await finishCommit(folder);
}

/**
 * The path to read for the file `name` of a folder written by writeFilesAtomic: the new file a committed but
 * unfinished write left (its temporary), else `folder/name`. A commit file that is not one of ours throws
 * FileReadError.
 */
export async function committedPath(folder: string, name: string): Promise<string> {
  const temporary = (await pendingCommit(folder))?.get(name);
  if (temporary !== undefined) {
    const path = join(folder, temporary);
    if (
      await stat(path).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return join(folder, name);
}
