// The structure of a PNG file checked before it is decoded (pngjs reads corrupt image data as black pixels and
// allocates whatever size the header declares): the declared size against a limit, then the compressed image data
// inflated to exactly the bytes that size needs.
import { inflateSync } from 'node:zlib';

/** The most pixels (width × height) of an image that is decoded: 2048 × 2048. */
export const MAX_IMAGE_PIXELS = 2 ** 22;

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
// Samples per pixel of each PNG colour type: grey, RGB, palette index, grey + alpha, RGBA.
const SAMPLES: Readonly<Record<number, number>> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
// The passes of Adam7 interlacing: first column and row, and the steps between them.
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

/** The bytes of filtered scanlines an image of this header decompresses to (a filter byte starts each row). */
function filteredSize(width: number, height: number, bitsPerPixel: number, interlaced: boolean): number {
  const rows = (w: number, h: number) => (w === 0 || h === 0 ? 0 : h * (1 + Math.ceil((w * bitsPerPixel) / 8)));
  if (!interlaced) return rows(width, height);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) total += rows(Math.ceil((width - x0) / dx), Math.ceil((height - y0) / dy));
  return total;
}

/**
 * Checks the PNG in `bytes` without decoding its pixels: the signature, chunks that fit the file, an IHDR whose
 * size is at most MAX_IMAGE_PIXELS and whose colour type and depth exist, and image data that inflates without error
 * to exactly the bytes of that size. Returns the size; throws an Error saying what is wrong.
 */
export function checkPng(bytes: Uint8Array): { width: number; height: number } {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data.length < 8 || !data.subarray(0, 8).equals(SIGNATURE)) throw new Error('no PNG signature');
  let header: { width: number; height: number; bitsPerPixel: number; interlaced: boolean } | undefined;
  const compressed: Buffer[] = [];
  let at = 8;
  let ended = false;
  while (!ended) {
    if (at + 12 > data.length) throw new Error(`truncated: no complete chunk at byte ${at}`);
    const length = data.readUInt32BE(at);
    const type = data.toString('latin1', at + 4, at + 8);
    if (length > data.length - at - 12) throw new Error(`truncated: chunk ${JSON.stringify(type)} runs past the end`);
    const body = data.subarray(at + 8, at + 8 + length);
    if (header === undefined && type !== 'IHDR') throw new Error('the first chunk is not IHDR');
    if (type === 'IHDR') {
      if (header !== undefined || length !== 13) throw new Error('a second or malformed IHDR');
      const width = body.readUInt32BE(0);
      const height = body.readUInt32BE(4);
      const depth = body[8] as number;
      const colourType = body[9] as number;
      if (width === 0 || height === 0) throw new Error(`declares an empty image (${width}×${height})`);
      if (width * height > MAX_IMAGE_PIXELS)
        throw new Error(`declares ${width}×${height} pixels, more than the limit of ${MAX_IMAGE_PIXELS}`);
      const samples = SAMPLES[colourType];
      const depths = colourType === 3 ? [1, 2, 4, 8] : colourType === 0 ? [1, 2, 4, 8, 16] : [8, 16];
      if (samples === undefined || !depths.includes(depth))
        throw new Error(`colour type ${colourType} with bit depth ${depth} is not a PNG format`);
      header = { width, height, bitsPerPixel: samples * depth, interlaced: body[12] === 1 };
    } else if (type === 'IDAT') compressed.push(body);
    else if (type === 'IEND') ended = true;
    at += 12 + length;
  }
  if (header === undefined) throw new Error('no IHDR chunk');
  const { width, height, bitsPerPixel, interlaced } = header;
  const expected = filteredSize(width, height, bitsPerPixel, interlaced);
  let inflated: Buffer;
  try {
    inflated = inflateSync(Buffer.concat(compressed), { maxOutputLength: expected + 1 });
  } catch (error) {
    throw new Error(`corrupt image data (${(error as Error).message})`);
  }
  if (inflated.length !== expected)
    throw new Error(`corrupt image data: ${inflated.length} bytes where ${width}×${height} needs ${expected}`);
  return { width, height };
}
