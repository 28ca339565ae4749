// Data parallelism over MPI (docs/distributed.md): the world of this process, opened once through libdnft_mpi.so,
// which `npm run build:mpi` builds against the local MPI, and the path of a model's gradient sums (NCCL for a model
// on the GPU, else MPI). A process that is not distributed never touches MPI or NCCL.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError, DistributedError, fromNative } from '../core/errors.js';
import { jsonDifference } from '../core/json-difference.js';
import { launchedByMpi, launcherSize } from '../core/launcher.js';
import { type NativeModel, native } from '../core/native.js';
import type { Device } from '../core/tensor.js';
import { type DeviceCollectives, DISTRIBUTED_SCHEMA } from '../options/distributed.js';
import { type Resolved, resolveOptions } from '../options/schema.js';

/** This process's place in the job. */
export interface World {
  /** This process's rank, 0 … size − 1. */
  rank: number;
  /** The number of ranks. */
  size: number;
  /** Epochs between parameter checks (0: none). */
  checkEvery: number;
  /** The trainer's choice of sums for a model on the GPU. */
  deviceCollectives: DeviceCollectives;
}

type Settings = Resolved<typeof DISTRIBUTED_SCHEMA>;

let world: World | undefined;

/** libdnft_mpi.so: $DNFT_MPI_LIBRARY, else build/mpi/ of the package (written by `npm run build:mpi`). */
export function mpiLibraryPath(): string {
  if (process.env.DNFT_MPI_LIBRARY) return process.env.DNFT_MPI_LIBRARY;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'build', 'mpi', 'libdnft_mpi.so');
}

/** The world for a trainer's `distributed` option: undefined runs in one process, exactly as without MPI. */
export function openWorld(what: string, option: unknown): World | undefined {
  if (option === false || (option === undefined && !launchedByMpi())) return undefined;
  if (option !== true && option !== undefined && (option === null || typeof option !== 'object')) {
    throw new TypeError(`${what} must be a boolean or { timeout, checkEvery, deviceCollectives }`);
  }
  const settings: Settings = resolveOptions(what, option === true ? undefined : option, DISTRIBUTED_SCHEMA);
  const own = { checkEvery: settings.checkEvery, deviceCollectives: settings.deviceCollectives };
  if (world !== undefined) return { ...world, ...own };
  const path = mpiLibraryPath();
  if (!existsSync(path)) {
    throw new BackendError(
      `${what}: distributed training needs ${path}; build it against your MPI with \`npm run build:mpi\` ` +
        '(needs an MPI such as Open MPI: apt-get install openmpi-bin libopenmpi-dev), or set DNFT_MPI_LIBRARY',
    );
  }
  const opened = native().mpiOpen(path, settings.timeout);
  // MPI_Finalize once the process is done, so the launcher sees a clean exit.
  process.once('exit', () => native().mpiFinalize());
  // A library of another MPI than the launcher's does not see the launcher's ranks: each process would be a world
  // of one, every rank training and writing alone.
  const launched = launcherSize();
  if (launched > 1 && opened.size !== launched) {
    throw new BackendError(
      `${what}: the launcher started ${launched} ranks but ${path} sees a world of ${opened.size}: it was built ` +
        "against another MPI than the launcher's (e.g. Open MPI's library under MPICH's mpiexec); build it against " +
        "the launcher's MPI or set DNFT_MPI_LIBRARY to such a library (docs/distributed.md)",
    );
  }
  world = { ...opened, checkEvery: 0, deviceCollectives: 'auto' };
  return { ...world, ...own };
}

let warnedHostSums = false;

// Why this rank's model cannot sum over NCCL; undefined when it can.
function ncclUnusable(device: Device): string | undefined {
  if (device !== 'cuda') return 'its model is on the CPU';
  try {
    native().ncclVersion();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const MODES: readonly DeviceCollectives[] = DISTRIBUTED_SCHEMA.deviceCollectives.values;

/**
 * Makes `model`'s steps sum over the world (every rank at once). A model on the GPU sums its gradient over NCCL
 * when `world.deviceCollectives` allows and every rank's model is on a GPU and loads NCCL, else through host
 * memory over MPI; 'nccl' then throws a BackendError on every rank, naming the first rank that cannot and why.
 */
export function distributeModel(what: string, model: NativeModel, device: Device, w: World): void {
  const reason = w.deviceCollectives === 'host' ? undefined : ncclUnusable(device);
  // Every rank takes the same path: the ranks' choices must agree, and NCCL runs only when all of them can.
  const mine = MODES.indexOf(w.deviceCollectives) * 2 + (reason === undefined ? 1 : 0);
  const all = allgather(Uint8Array.of(mine)).map((b) => b[0] as number);
  const other = all.findIndex((b) => b >> 1 !== mine >> 1);
  if (other >= 0) {
    throw new DistributedError(
      `${what}: distributed.deviceCollectives differs between ranks (rank ${w.rank}: '${w.deviceCollectives}', ` +
        `rank ${other}: '${MODES[(all[other] as number) >> 1]}'): every rank must be given the same options`,
      other,
    );
  }
  const lacking = all.findIndex((b) => (b & 1) === 0);
  const nccl = w.deviceCollectives !== 'host' && lacking < 0;
  const why = reason ?? `rank ${lacking} cannot (its own error says why)`;
  if (!nccl && w.deviceCollectives === 'nccl') {
    throw new BackendError(`${what}: deviceCollectives 'nccl' needs NCCL and a model on the GPU on every rank: ${why}`);
  }
  if (!nccl && w.deviceCollectives === 'auto' && device === 'cuda' && !warnedHostSums) {
    warnedHostSums = true;
    process.emitWarning(
      `the gradients of the model on the GPU are summed through host memory over MPI, not NCCL: ${why} ` +
        '(docs/distributed.md)',
      { code: 'DNFT_NCCL_FALLBACK' },
    );
  }
  try {
    model.setDistributed(true, nccl);
  } catch (error) {
    throw fromNative(error);
  }
}

/** This process's rank and the world size once a world is open; rank 0 of 1 in one process. */
export function currentWorld(): { rank: number; size: number } {
  return { rank: world?.rank ?? 0, size: world?.size ?? 1 };
}

/** Equal-sized byte blocks of every rank, in rank order. */
export function allgather(bytes: Uint8Array): Uint8Array[] {
  const all = native().mpiAllgather(bytes);
  const size = (world as World).size;
  return Array.from({ length: size }, (_, r) => all.subarray(r * bytes.length, (r + 1) * bytes.length));
}

/** Blocks of any length from every rank, in rank order: their lengths first, then the blocks padded to the longest. */
function allgatherVaried(bytes: Uint8Array): Uint8Array[] {
  const lengths = allgather(new Uint8Array(Float64Array.of(bytes.length).buffer)).map(
    (b) => new Float64Array(b.slice().buffer)[0] as number,
  );
  const padded = new Uint8Array(Math.max(...lengths));
  padded.set(bytes);
  return allgather(padded).map((block, r) => block.subarray(0, lengths[r]));
}

/** Every rank's text, in rank order. */
function allgatherText(text: string): string[] {
  return allgatherVaried(new TextEncoder().encode(text)).map((b) => new TextDecoder().decode(b));
}

/** Both texts parsed as JSON, or undefined when either is not JSON. */
function parseBoth(a: string, b: string): [unknown, unknown] | undefined {
  try {
    return [JSON.parse(a), JSON.parse(b)];
  } catch {
    return undefined;
  }
}

/** Where two texts first differ, shown on both: the text around that place, cut to about 120 characters. */
function excerpts(a: string, b: string): [string, string] {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 40);
  const cut = (t: string) => `${from > 0 ? '…' : ''}${t.slice(from, i + 80)}${t.length > i + 80 ? '…' : ''}`;
  return [cut(a), cut(b)];
}

/**
 * One thing every rank must be given alike, by its name in errors: a text (e.g. a JSON of options), a list of texts
 * (compared item by item, e.g. one per prompt) or bytes (θ, compared by hash only).
 */
export type RunPart = readonly [name: string, value: string | readonly string[] | Uint8Array];

const digest = (...parts: (string | Uint8Array)[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};

const partDigest = (value: RunPart[1]) =>
  typeof value === 'string' || value instanceof Uint8Array
    ? digest(value)
    : digest(...value.flatMap((item) => [`${item.length}:`, item]));

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

// How a part differs between rank 0 and rank r. Every rank calls it with the same part and r (what it sends is the
// same collectives on every rank).
function difference([name, value]: RunPart, r: number): string {
  if (value instanceof Uint8Array) return `${name} differ between rank 0 and rank ${r}`;
  if (typeof value === 'string') {
    const texts = allgatherText(value);
    const found = jsonDifference(...(parseBoth(texts[0] as string, texts[r] as string) ?? [undefined, undefined]));
    if (found !== undefined && found.path !== '') {
      return `${name} differ between rank 0 and rank ${r}: ${found.path} is ${found.a} on rank 0, ${found.b} on rank ${r}`;
    }
    const [zero, other] = excerpts(texts[0] as string, texts[r] as string);
    return `${name} differ between rank 0 and rank ${r}: ${zero} on rank 0, ${other} on rank ${r}`;
  }
  const lists = allgatherVaried(concatenate(value.map((item) => digest(item))));
  const [zero, other] = [lists[0] as Uint8Array, lists[r] as Uint8Array];
  const first = Array.from({ length: Math.min(zero.length, other.length) / 32 }, (_, i) => i).find(
    (i) => !sameBytes(zero.subarray(i * 32, i * 32 + 32), other.subarray(i * 32, i * 32 + 32)),
  );
  // Every rank takes part in the gather of item `first` (ranks without one send '').
  const texts = first === undefined ? [] : allgatherText(value[first] ?? '');
  const counts = `${zero.length / 32} on rank 0, ${other.length / 32} on rank ${r}`;
  if (first === undefined) return `${name} differ between rank 0 and rank ${r} in number: ${counts}`;
  const [a, b] = excerpts(texts[0] as string, texts[r] as string);
  return `${name} differ between rank 0 and rank ${r}: ${name}[${first}] is ${a} on rank 0, ${b} on rank ${r}`;
}

function concatenate(blocks: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const block of blocks) {
    all.set(block, at);
    at += block.length;
  }
  return all;
}

/**
 * Checks that every rank computes the same run: a hash of each part (the options, the prompts, the rewards' names
 * and weights, θ's bytes) is all-gathered, and the first part that differs between rank 0 and another rank is a
 * DistributedError on every rank naming the part, the ranks and, but for θ, what differs. SHA-256 in native code: θ
 * of a preset M network is 47 MB, which a hash written in JavaScript took a minute over.
 */
export function checkSameRun(what: string, ...parts: RunPart[]): void {
  const mine = concatenate(parts.map(([, value]) => partDigest(value)));
  const all = allgather(mine);
  const first = all[0] as Uint8Array;
  for (let p = 0; p < parts.length; p++) {
    const slice = (x: Uint8Array) => x.subarray(p * 32, p * 32 + 32);
    const r = all.findIndex((x) => !sameBytes(slice(x), slice(first)));
    if (r < 0) continue;
    throw new DistributedError(
      `${what}: ${difference(parts[p] as RunPart, r)}: every rank must be given the same options, prompts, ` +
        'rewards and network',
      r,
    );
  }
}
