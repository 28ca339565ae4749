// Durable, atomic file writes: every file this package writes (checkpoints, images, reports) goes through here.
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Whether a process with this id exists (one we may not signal exists too). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files `<path>.tmp-<pid>-<hex>` that writes of processes no longer running left behind (a
 * process killed mid-write cannot remove its own). Files of live processes, this one included, are kept.
 */
async function removeStaleTemporaries(path: string): Promise<void> {
  const folder = dirname(path);
  const pattern = /^\.tmp-([0-9]+)-[0-9a-f]{12}$/;
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return;
  }
  const prefix = basename(path);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(pattern.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processExists(pid)) continue;
    await rm(join(folder, name), { force: true });
  }
}

/**
 * Writes `content` atomically: to a uniquely named temporary file in the same folder, flushed to disk and renamed
 * over `path`, so readers see the old file or the new one, never a partial one. The temporary file is removed on
 * failure, and those of earlier writers to `path` that were killed are removed first.
 */
export async function writeFileAtomic(path: string, content: Uint8Array | string): Promise<void> {
  await removeStaleTemporaries(path);
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    const file = await open(temporary, 'wx');
    try {
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  // Best effort: make the rename itself durable (not possible on every platform).
  try {
    const folder = await open(dirname(path), 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  } catch {
    // ignored
  }
}
