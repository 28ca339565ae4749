// The files of the run folders that the dashboard reads and serves. Only a regular file is opened for good: a FIFO
// is opened without waiting for a writer and then refused (one blocked open holds a thread of libuv's pool, which
// the training's own file writes share), and a device such as /dev/zero is refused before a byte is read. A served
// file's real path must lie inside its run folder's real path, so a symlink that leads out is refused. Served files
// are streamed, so a large one costs a read buffer per request, not its size.
import { constants } from 'node:fs';
import { type FileHandle, open, readlink, realpath } from 'node:fs/promises';
import { sep } from 'node:path';

const MiB = 2 ** 20;

/** The largest run file the dashboard serves (metrics.jsonl, sample grids, curves). */
export const MAX_SERVED_BYTES = 256 * MiB;

/** Why a file is not served: 403 for 'outside' and 'not-regular', 413 for 'too-large', 404 for 'missing'. */
export type Refusal = 'outside' | 'not-regular' | 'too-large' | 'missing';

/** An open regular file and its size when opened; the caller closes it. */
export interface OpenFile {
  handle: FileHandle;
  size: number;
}

const inside = (path: string, root: string) => path.startsWith(root + sep);

/** Opens a regular file of at most `limit` bytes without following a final symlink or waiting on a FIFO. */
async function openRegular(path: string, limit: number): Promise<OpenFile | Refusal> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    // ELOOP: the path became a symlink since it was resolved.
    return (error as NodeJS.ErrnoException).code === 'ELOOP' ? 'outside' : 'missing';
  }
  const info = await handle.stat().catch(() => undefined);
  const refusal =
    info === undefined ? 'missing' : !info.isFile() ? 'not-regular' : info.size > limit ? 'too-large' : '';
  if (refusal !== '' || info === undefined) {
    await handle.close();
    return refusal as Refusal;
  }
  return { handle, size: info.size };
}

// The real paths of a run folder and of a path in it; undefined when either does not exist.
async function realPaths(root: string, path: string): Promise<{ realRoot: string; realPath: string } | undefined> {
  const [realRoot, realPath] = await Promise.all([realpath(root), realpath(path)]).catch(() => []);
  return realRoot === undefined || realPath === undefined ? undefined : { realRoot, realPath };
}

/** Where the real path of `path` lies with respect to the real path of the run folder `root`. */
export async function placeOf(root: string, path: string): Promise<'inside' | 'outside' | 'missing'> {
  const real = await realPaths(root, path);
  if (real === undefined) return 'missing';
  return inside(real.realPath, real.realRoot) ? 'inside' : 'outside';
}

/**
 * Opens `full` (a path below the run folder `root`, already checked lexically) for serving: its real path must lie
 * inside the real path of `root`, checked before opening and again on what was opened (the open file's own path in
 * /proc on Linux), so that a symlink swapped in between is refused too.
 */
export async function openServedFile(root: string, full: string): Promise<OpenFile | Refusal> {
  const real = await realPaths(root, full);
  if (real === undefined) return 'missing';
  const { realRoot, realPath } = real;
  if (!inside(realPath, realRoot)) return 'outside';
  const opened = await openRegular(realPath, MAX_SERVED_BYTES);
  if (typeof opened === 'string') return opened;
  const openedPath = await readlink(`/proc/self/fd/${opened.handle.fd}`).catch(() => realPath);
  if (!inside(openedPath, realRoot)) {
    await opened.handle.close();
    return 'outside';
  }
  return opened;
}
