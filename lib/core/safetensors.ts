// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// mapping each tensor name to its dtype, shape and byte range [begin, end) in the data section (plus an optional
// "__metadata__" string map), then the data section, tensors back to back with no gaps. Readers validate everything,
// because a checkpoint may be truncated or corrupt; writers are atomic. Little-endian throughout.
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { excerpt } from './errors.js';
import { writeFileAtomic } from './files.js';

/** Element types read and written (F16 and BF16 are also read, converted to F32). */
export type SafeDType = 'F32' | 'I32' | 'F64' | 'I64' | 'U8';

/** One tensor: its element type, shape (`[]` for a scalar) and row-major data of `shape`'s product elements. */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Int32Array | Float64Array | BigInt64Array | Uint8Array;
}

/** A file or buffer is not valid safetensors; the message names the source, the tensor and the problem. */
export class SafetensorsError extends Error {
  /** The error's name, 'SafetensorsError'. */
  override name = 'SafetensorsError';
}

/** The largest header accepted, as in the reference implementation. */
export const MAX_HEADER = 100_000_000;
/**
 * The most tensors a header may declare: far above any network here (a depth-256 DiT with every parameter set and
 * LoRA), and low enough that a header of empty tensors is refused before each is looked at.
 */
export const MAX_TENSORS = 100_000;
/** The deepest nesting of JSON accepted in a header (and in JSON strings of its metadata). */
export const MAX_JSON_DEPTH = 64;
const METADATA = '__metadata__';
const ARRAYS = {
  F32: Float32Array,
  I32: Int32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  U8: Uint8Array,
} as const;
const SIZES: Record<SafeDType, number> = { F32: 4, I32: 4, F64: 8, I64: 8, U8: 1 };
/** Dtypes only read, widened to F32. */
const HALF_SIZES: Record<'F16' | 'BF16', number> = { F16: 2, BF16: 2 };

type Decoded = { tensors: Record<string, SafeTensor>; metadata: Record<string, string> };

/** A tensor as the header declares it: dtype (F16 and BF16 read as F32), shape and byte range in the data. */
export interface TensorEntry {
  dtype: SafeDType | 'F16' | 'BF16';
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: the tensors it declares (by name) and its metadata. */
export interface Header {
  tensors: Record<string, TensorEntry>;
  metadata: Record<string, string>;
}

/**
 * JSON.parse of text nested at most `maxDepth` deep and holding at most `maxObjects` objects; other text throws a
 * RangeError before parsing (JSON.parse would overflow the stack on very deep input).
 */
export function parseBoundedJson(
  text: string,
  maxDepth = MAX_JSON_DEPTH,
  maxObjects = Number.POSITIVE_INFINITY,
): unknown {
  let depth = 0;
  let objects = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) throw new RangeError(`JSON nested deeper than ${maxDepth} levels`);
      if (c === 0x7b && ++objects > maxObjects) throw new RangeError(`JSON holding more than ${maxObjects} objects`);
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return JSON.parse(text);
}

function isDType(dtype: unknown): dtype is SafeDType {
  return typeof dtype === 'string' && Object.hasOwn(SIZES, dtype);
}

function isHalf(dtype: unknown): dtype is 'F16' | 'BF16' {
  return typeof dtype === 'string' && Object.hasOwn(HALF_SIZES, dtype);
}

/** Sets a property even when the name is `__proto__`, so names from a file cannot touch a prototype. */
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Product of the dimensions, or undefined when it is not a safe integer. */
function elementCount(shape: readonly number[]): number | undefined {
  let count = 1;
  for (const d of shape) count *= d;
  return Number.isSafeInteger(count) ? count : undefined;
}

function formatShape(shape: readonly unknown[]): string {
  return excerpt(`[${shape.map((d) => JSON.stringify(d) ?? String(d)).join(', ')}]`);
}

/**
 * Finds the first key repeated within one object of already-valid JSON text (JSON.parse silently keeps the last).
 * Returns the key and the key of the object holding it (undefined at the top level).
 */
function findDuplicateKey(text: string): { key: string; parent: string | undefined } | undefined {
  const stack: { keys: Set<string> | undefined; expectKey: boolean; lastKey: string | undefined }[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, parent: stack[stack.length - 2]?.lastKey };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) {
      stack.push({ keys: new Set(), expectKey: true, lastKey: undefined });
    } else if (c === 0x5b) {
      stack.push({ keys: undefined, expectKey: false, lastKey: undefined });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      if (top?.keys !== undefined) top.expectKey = true;
    }
  }
  return undefined;
}

/** IEEE half precision bits to a number. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Widens little-endian F16 or BF16 bytes (an aligned copy) to a Float32Array. */
function widenHalf(dtype: 'F16' | 'BF16', bytes: Uint8Array, count: number): Float32Array {
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  const out = new Float32Array(count);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) bits[i] = (halves[i] as number) << 16;
  } else {
    for (let i = 0; i < count; i++) out[i] = halfToNumber(halves[i] as number);
  }
  return out;
}

/**
 * Encodes tensors (and optional string metadata) as safetensors bytes. Tensors are laid out by dtype size descending,
 * then by name; the header JSON is padded with spaces so that the data section starts 8-byte aligned.
 * Throws SafetensorsError for a bad dtype, a shape that does not match the data, or non-string metadata.
 */
export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
      throw new SafetensorsError('metadata must be an object of strings');
    }
    const copy: Record<string, string> = {};
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        throw new SafetensorsError(`metadata '${key}' must be a string, got ${typeof value}`);
      }
      setOwn(copy, key, value);
    }
    header[METADATA] = copy;
  }
  for (const [name, t] of Object.entries(tensors)) {
    if (name === METADATA) throw new SafetensorsError(`'${METADATA}' cannot be a tensor name`);
    if (t === null || typeof t !== 'object') throw new SafetensorsError(`tensor '${name}': not a tensor`);
    if (!isDType(t.dtype)) {
      throw new SafetensorsError(
        `tensor '${name}': unsupported dtype ${JSON.stringify(t.dtype)} (writable: ${Object.keys(SIZES).join(', ')})`,
      );
    }
    const Expected = ARRAYS[t.dtype];
    if (!(t.data instanceof Expected)) {
      throw new SafetensorsError(`tensor '${name}': data must be a ${Expected.name} for dtype ${t.dtype}`);
    }
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      throw new SafetensorsError(`tensor '${name}': shape ${formatShape(t.shape ?? [])} is not non-negative integers`);
    }
    if (elementCount(t.shape) !== t.data.length) {
      throw new SafetensorsError(
        `tensor '${name}': shape ${formatShape(t.shape)} does not hold the data's ${t.data.length} elements`,
      );
    }
  }
  const names = Object.keys(tensors).sort((a, b) => {
    const da = SIZES[(tensors[a] as SafeTensor).dtype];
    const db = SIZES[(tensors[b] as SafeTensor).dtype];
    return db - da || (a < b ? -1 : a > b ? 1 : 0);
  });
  let offset = 0;
  for (const name of names) {
    const t = tensors[name] as SafeTensor;
    setOwn(header, name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + t.data.byteLength] });
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let cursor = 8 + headerLength;
  for (const name of names) {
    const data = (tensors[name] as SafeTensor).data;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), cursor);
    cursor += data.byteLength;
  }
  return out;
}

/**
 * Validates a header's JSON bytes against the length of the data section that follows them: UTF-8, JSON within the
 * depth bound, no duplicate keys, known dtypes, shapes of non-negative integers, offsets that tile the data section
 * exactly, string metadata. Throws SafetensorsError naming `source`.
 */
export function decodeHeader(json: Uint8Array, dataLength: number, source?: string): Header {
  const fail = (message: string): never => {
    throw new SafetensorsError(source === undefined ? `safetensors: ${message}` : `${source}: ${message}`);
  };
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    fail('the header is not valid UTF-8');
  }
  let header: unknown;
  try {
    // The header object, __metadata__ and one object per tensor.
    header = parseBoundedJson(text, MAX_JSON_DEPTH, MAX_TENSORS + 2);
  } catch (error) {
    fail(`the header is not valid JSON or declares more than ${MAX_TENSORS} tensors (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    fail(
      `the header is not a JSON object (got ${header === null ? 'null' : Array.isArray(header) ? 'an array' : typeof header})`,
    );
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    fail(
      duplicate.parent === undefined
        ? `duplicate key '${excerpt(duplicate.key)}' in the header`
        : `duplicate key '${excerpt(duplicate.key)}' in '${excerpt(duplicate.parent)}'`,
    );
  }

  const metadata: Record<string, string> = {};
  const tensors: Record<string, TensorEntry> = {};
  const ranges: (TensorEntry & { name: string })[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`'${METADATA}' is not an object`);
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string')
          fail(
            `'${METADATA}' entry '${excerpt(key)}' is not a string (got ${excerpt(JSON.stringify(v) ?? String(v))})`,
          );
        setOwn(metadata, key, v as string);
      }
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      fail(`tensor '${excerpt(name)}': entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype) && !isHalf(dtype)) {
      fail(
        `tensor '${excerpt(name)}': unsupported dtype ${excerpt(JSON.stringify(dtype) ?? String(dtype))} ` +
          `(supported: ${[...Object.keys(SIZES), ...Object.keys(HALF_SIZES)].join(', ')})`,
      );
    }
    const type = dtype as SafeDType | 'F16' | 'BF16';
    if (!Array.isArray(shape)) fail(`tensor '${excerpt(name)}': shape is not an array`);
    const dims = shape as unknown[];
    const badDim = dims.find((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0);
    if (badDim !== undefined) {
      fail(
        `tensor '${excerpt(name)}': shape ${formatShape(dims)} has ${excerpt(JSON.stringify(badDim) ?? String(badDim))}, not a non-negative integer`,
      );
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) {
      fail(
        `tensor '${excerpt(name)}': data_offsets ${excerpt(JSON.stringify(offsets) ?? String(offsets))} is not two non-negative integers`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(`tensor '${excerpt(name)}': data_offsets [${begin}, ${end}] end before they begin`);
    const count = elementCount(dims as number[]);
    const size = isHalf(type) ? HALF_SIZES[type] : SIZES[type];
    if (count === undefined || end - begin !== count * size) {
      fail(
        `tensor '${excerpt(name)}': data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ` +
          `${formatShape(dims)} of ${type} needs ${count === undefined ? 'too many' : count * size}`,
      );
    }
    const entry = { dtype: type, shape: [...(dims as number[])], begin, end };
    setOwn(tensors, name, entry);
    ranges.push({ name, ...entry });
  }

  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const r of ranges) {
    if (r.begin < expected) {
      fail(
        `tensor '${excerpt(r.name)}': data_offsets [${r.begin}, ${r.end}] overlap the previous tensor, which ends at ${expected}`,
      );
    }
    if (r.begin > expected) {
      fail(`tensor '${excerpt(r.name)}': data_offsets [${r.begin}, ${r.end}] leave a gap after byte ${expected}`);
    }
    if (r.end > dataLength) {
      fail(
        `truncated: tensor '${excerpt(r.name)}' ends at data byte ${r.end} but the data section has only ${dataLength}`,
      );
    }
    expected = r.end;
  }
  if (expected !== dataLength) {
    fail(
      `${dataLength - expected} trailing bytes after the last tensor (data section ${dataLength}, tensors ${expected})`,
    );
  }
  return { tensors, metadata };
}

/** The tensors of a validated header, copied out of its data section (F16 and BF16 widened to F32). */
function extractTensors(header: Header, data: Uint8Array): Record<string, SafeTensor> {
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, r] of Object.entries(header.tensors)) {
    // A copy into a fresh ArrayBuffer at offset 0, so the typed array below is aligned and owns its memory. (Not
    // bytes.slice(): on a Node Buffer, slice() is a view into memory the caller, or Buffer's pool, may reuse.)
    const copy = new Uint8Array(data.subarray(r.begin, r.end));
    const count = elementCount(r.shape) as number;
    if (isHalf(r.dtype)) {
      setOwn(tensors, name, { dtype: 'F32', shape: r.shape, data: widenHalf(r.dtype, copy, count) });
    } else {
      const Array_ = ARRAYS[r.dtype];
      setOwn(tensors, name, { dtype: r.dtype, shape: r.shape, data: new Array_(copy.buffer, 0, count) });
    }
  }
  return tensors;
}

/**
 * The header length of the first 8 bytes, checked against the limit and the bytes available after them. A length
 * over the limit is what any other kind of file gives (8 bytes of text or a PNG signature read as a length), so
 * that error says so first.
 */
function headerLength(prefix: Uint8Array, available: number, fail: (message: string) => never): number {
  const declared = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER)) {
    fail(`not a safetensors file: header length ${declared} exceeds the limit of ${MAX_HEADER} bytes`);
  }
  const n = Number(declared);
  if (available < n) fail(`truncated: the header length says ${n} bytes but only ${available} follow the length`);
  return n;
}

/**
 * Decodes and validates safetensors bytes (padded or unpadded header); `source` (e.g. a path) names them in errors.
 * Returned arrays are fresh copies that never alias `bytes`. F16 and BF16 tensors come back widened to F32.
 * Throws SafetensorsError for truncation, trailing bytes, bad JSON, duplicate keys, unknown dtypes, bad shapes,
 * offsets that do not tile the data section exactly, or non-string metadata.
 */
export function decodeSafetensors(bytes: Uint8Array, source?: string): Decoded {
  const fail = (message: string): never => {
    throw new SafetensorsError(source === undefined ? `safetensors: ${message}` : `${source}: ${message}`);
  };
  if (!(bytes instanceof Uint8Array)) fail('input is not a Uint8Array');
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, fewer than the 8-byte header length`);
  const n = headerLength(bytes, bytes.length - 8, fail);
  const header = decodeHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, source);
  return { tensors: extractTensors(header, bytes.subarray(8 + n)), metadata: header.metadata };
}

/**
 * Writes a safetensors file atomically (lib/core/files.ts): readers see the old file or the new one, never a partial one.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, SafeTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** An open safetensors file whose header is validated; its data is read only when asked for. */
export interface SafetensorsFile extends Header {
  /** Reads and returns every tensor (validated against the header already). */
  readTensors(): Promise<Record<string, SafeTensor>>;
  close(): Promise<void>;
}

/**
 * Opens a safetensors file and validates its header without reading the data: only a regular file (not a FIFO, a
 * device or a folder), the 8-byte length first, then at most MAX_HEADER bytes of header, whose offsets must match
 * the file's length exactly. Errors (including a missing file) are SafetensorsErrors naming `path`.
 */
export async function openSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const fail = (message: string): never => {
    throw new SafetensorsError(`${path}: ${message}`);
  };
  let file: FileHandle | undefined;
  try {
    try {
      // O_NONBLOCK: opening a FIFO must not wait for a writer (the check below then refuses it).
      file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      fail(`cannot read the file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const handle = file as FileHandle;
    const info = await handle.stat();
    if (!info.isFile()) fail('not a regular file');
    const size = info.size;
    const readExactly = async (length: number, position: number): Promise<Uint8Array> => {
      const buffer = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
        if (bytesRead === 0) fail(`truncated while reading: the file changed or shrank`);
        done += bytesRead;
      }
      return buffer;
    };
    if (size < 8) fail(`truncated: ${size} bytes, fewer than the 8-byte header length`);
    const n = headerLength(await readExactly(8, 0), size - 8, fail);
    const header = decodeHeader(await readExactly(n, 8), size - 8 - n, path);
    return {
      ...header,
      readTensors: async () => extractTensors(header, await readExactly(size - 8 - n, 8 + n)),
      close: () => handle.close(),
    };
  } catch (error) {
    await file?.close();
    throw error;
  }
}

/** Reads and validates a safetensors file; errors (including a missing file) are SafetensorsErrors naming `path`. */
export async function readSafetensorsFile(path: string): Promise<Decoded> {
  const file = await openSafetensorsFile(path);
  try {
    return { tensors: await file.readTensors(), metadata: file.metadata };
  } finally {
    await file.close();
  }
}
