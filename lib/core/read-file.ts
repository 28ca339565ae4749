// The one guarded reader of the files this package reads besides safetensors files (which
// lib/core/safetensors.ts opens the same way): image folders, PEFT configs, metrics.jsonl, --config files, and the
// files the dashboard serves. Only a regular file is read (a FIFO would block, /dev/zero would never end), and only
// up to the size limit of its kind, checked before a byte is read.
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

const MiB = 2 ** 20;

/** The largest file of each kind that is read, in bytes. */
export const READ_LIMITS = {
  /** A PNG image: a training image, or a sample grid the dashboard serves. */
  image: 64 * MiB,
  /** A small JSON file: a PEFT adapter_config.json, a --config file, a run's config.json. */
  config: 4 * MiB,
  /** A run's metrics.jsonl (or the older metrics.json). */
  metrics: 256 * MiB,
} as const;

/** A kind of file, with its size limit in READ_LIMITS. */
export type FileKind = keyof typeof READ_LIMITS;

/** Why a file was not read. */
export type ReadFailure = 'missing' | 'not-regular' | 'too-large' | 'unreadable';

/** A file that readGuarded refused or could not read; `reason` says why, the message names the path. */
export class FileReadError extends Error {
  override name = 'FileReadError';
  /** The file. */
  readonly path: string;
  /** Why it was not read. */
  readonly reason: ReadFailure;
  constructor(path: string, reason: ReadFailure, detail: string, options?: ErrorOptions) {
    super(`${path}: ${detail}`, options);
    this.path = path;
    this.reason = reason;
  }
}

/**
 * The bytes of the regular file at `path`, at most READ_LIMITS[kind] of them. A missing file, a folder, a FIFO, a
 * device, a socket, a file over the limit or a read error throws FileReadError; nothing waits on a writer. A file
 * that grows while it is read is read to the length it had when opened.
 */
export async function readGuarded(path: string, kind: FileKind): Promise<Buffer> {
  const limit = READ_LIMITS[kind];
  let file: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (the check below then refuses it).
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unreadable';
    throw new FileReadError(path, reason, `cannot open (${code ?? (error as Error).message})`, { cause: error });
  }
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new FileReadError(path, 'not-regular', 'not a regular file');
    if (info.size > limit) {
      throw new FileReadError(path, 'too-large', `${info.size} bytes, over the limit of ${limit} for a ${kind} file`);
    }
    const buffer = Buffer.alloc(info.size);
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await file.read(buffer, done, buffer.length - done, done);
      if (bytesRead === 0) break; // the file shrank while being read
      done += bytesRead;
    }
    return done === buffer.length ? buffer : buffer.subarray(0, done);
  } catch (error) {
    if (error instanceof FileReadError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new FileReadError(path, 'unreadable', `cannot read (${code ?? (error as Error).message})`, { cause: error });
  } finally {
    await file.close();
  }
}

/** readGuarded's bytes as UTF-8 text. */
export async function readGuardedText(path: string, kind: FileKind): Promise<string> {
  return (await readGuarded(path, kind)).toString('utf8');
}
