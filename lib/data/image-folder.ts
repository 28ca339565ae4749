// Training images from a folder in the ImageFolder convention (docs/data.md): DIR/<class>/**/*.png, one condition
// token per class folder, decoded with pngjs, resized to the network's image side and scaled to [−1, 1].
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { PNG } from 'pngjs';
import { DatasetError } from '../core/errors.js';
import { limits, native } from '../core/native.js';
import { IMAGE_FOLDER_STREAM } from '../core/random.js';
import { readGuarded } from '../core/read-file.js';
import { Tensor } from '../core/tensor.js';
import { checkPng } from '../images/png-check.js';
import { resizeImage } from '../images/resize.js';
import type { NetConfig } from '../options/net-config.js';
import { type Rule, resolveOptions } from '../options/schema.js';

/** Options of imageFolderDataset. */
export interface ImageFolderOptions {
  /** Images of another size: 'bilinear' resamples them (antialiased, docs/data.md), 'reject' fails naming the file. */
  resize?: 'bilinear' | 'reject';
  /** Channels of an MLP network's samples (1, 3 or 4; 3 by default): its dataDim must be side² · channels. */
  channels?: number;
  /** Called after each decoded image, for progress output on large folders. */
  onProgress?: (done: number, total: number) => void;
}

const IMAGE_FOLDER_SCHEMA = {
  resize: { type: 'enum', values: ['bilinear', 'reject'], default: 'bilinear' },
  channels: { type: 'int', min: 1, max: 4096 },
  onProgress: { type: 'value' },
} as const satisfies Record<keyof ImageFolderOptions, Rule>;

/** The images of a folder, decoded, with their classes; batches draw them epoch by epoch in a seeded order. */
export class ImageFolderDataset {
  /** The folder read. */
  readonly dir: string;
  /** The class folder names, sorted; class k has condition token k + 1 (token 0 is the null condition). */
  readonly classes: readonly string[];
  /** Each image's path relative to `dir`, class by class in sorted order. */
  readonly files: readonly string[];
  /** Each image's class index. */
  readonly labels: Int32Array;
  /** The images (n × dataDim values, HWC, in [−1, 1]). */
  readonly images: Float32Array;
  /** How many of the images were resampled to the network's size. */
  readonly resized: number;
  readonly #dataDim: number;
  readonly #condSlots: number;
  #epoch = -1;
  #order = new Int32Array(0);
  #orderSeed = Number.NaN;

  /** @internal Built by imageFolderDataset. */
  constructor(
    dir: string,
    layout: { classes: string[]; files: string[]; labels: Int32Array; images: Float32Array; resized: number },
    shape: { dataDim: number; condSlots: number },
  ) {
    this.dir = dir;
    this.classes = Object.freeze(layout.classes);
    this.files = Object.freeze(layout.files);
    this.labels = layout.labels;
    this.images = layout.images;
    this.resized = layout.resized;
    this.#dataDim = shape.dataDim;
    this.#condSlots = shape.condSlots;
  }

  /** The number of images. */
  get length(): number {
    return this.labels.length;
  }

  /** The condition token of a class name. */
  token(className: string): number {
    const k = this.classes.indexOf(className);
    if (k < 0) throw new RangeError(`no class '${className}'; the classes are ${this.classes.join(', ')}`);
    return k + 1;
  }

  /** Condition tokens (n, condSlots) asking for the given class indices: the class token, then null padding. */
  conditions(classIndices: ArrayLike<number>): Tensor<'int32'> {
    const cond = new Int32Array(classIndices.length * this.#condSlots);
    for (let i = 0; i < classIndices.length; i++) {
      const k = classIndices[i] as number;
      if (!Number.isInteger(k) || k < 0 || k >= this.classes.length) {
        throw new RangeError(`class index ${k} is not in [0, ${this.classes.length})`);
      }
      cond[i * this.#condSlots] = k + 1;
    }
    return Tensor.fromInt32(cond, [classIndices.length, this.#condSlots]);
  }

  /**
   * Batch `index` of a seed: images index·size … (index + 1)·size − 1 of the stream of epochs, each epoch every
   * image once in an order drawn from (seed, epoch). Batch `index` of a seed is always the same data.
   */
  batch(
    size: number,
    seed: number,
    index: number,
  ): {
    /** The images (size, dataDim). */
    x0: Tensor;
    /** Their classes' condition tokens (size, condSlots). */
    cond: Tensor<'int32'>;
    /** Their class indices. */
    labels: Int32Array;
  } {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`batch size must be a positive integer, got ${size}`);
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`batch index must be ≥ 0, got ${index}`);
    const n = this.length;
    const d = this.#dataDim;
    const x0 = new Float32Array(size * d);
    const labels = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      const position = index * size + i;
      const image = this.#orderOf(seed, Math.floor(position / n))[position % n] as number;
      x0.set(this.images.subarray(image * d, (image + 1) * d), i * d);
      labels[i] = this.labels[image] as number;
    }
    return { x0: Tensor.from(x0, [size, d]), cond: this.conditions(labels), labels };
  }

  // A Fisher–Yates shuffle of the images with uniforms of (seed, stream, epoch·n …); the last epoch is cached.
  #orderOf(seed: number, epoch: number): Int32Array {
    if (epoch === this.#epoch && seed === this.#orderSeed) return this.#order;
    const n = this.length;
    const uniforms = new Float32Array(n);
    native().randomFill(uniforms, seed, IMAGE_FOLDER_STREAM, epoch * n, 'uniform');
    const order = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor((uniforms[i] as number) * (i + 1)));
      const swap = order[i] as number;
      order[i] = order[j] as number;
      order[j] = swap;
    }
    this.#epoch = epoch;
    this.#orderSeed = seed;
    this.#order = order;
    return order;
  }
}

/**
 * Reads the PNG images of `dir` in the ImageFolder convention for a network of `config` (docs/data.md): each
 * sub-folder is a class (names sorted; class k is condition token k + 1), holding PNG files at any depth. Every image
 * must have the network's channels (grey is replicated into RGB; transparency is refused unless the network has 4
 * channels) and is resampled to its side unless `resize: 'reject'`. Bad folders and files give a DatasetError.
 */
export async function imageFolderDataset(
  dir: string,
  config: NetConfig,
  options: ImageFolderOptions = {},
): Promise<ImageFolderDataset> {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('imageFolderDataset expects a folder path');
  const o = resolveOptions('options', options, IMAGE_FOLDER_SCHEMA);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') {
    throw new TypeError('options.onProgress must be a function');
  }
  const onProgress = o.onProgress as ImageFolderOptions['onProgress'];
  const shape = imageShape(config, o.channels);
  const classes = await classFolders(dir);
  if (classes.length > config.vocabSize - 1) {
    throw new DatasetError(
      dir,
      `${classes.length} classes need ${classes.length + 1} condition tokens (token 0 is the null condition), but the network's vocabSize is ${config.vocabSize}`,
    );
  }
  const files: string[] = [];
  const labels: number[] = [];
  for (const [k, name] of classes.entries()) {
    const found = await pngFiles(dir, join(dir, name));
    if (found.length === 0) throw new DatasetError(join(dir, name), 'class folder holds no PNG image');
    files.push(...found);
    for (const _ of found) labels.push(k);
  }
  const bytes = files.length * config.dataDim * Float32Array.BYTES_PER_ELEMENT;
  if (bytes > limits().maxArrayBytes) {
    throw new DatasetError(
      dir,
      `${files.length} images of ${config.dataDim} values need ${bytes} bytes, over the limit of ${limits().maxArrayBytes}`,
    );
  }
  const images = new Float32Array(files.length * config.dataDim);
  let resized = 0;
  for (const [i, file] of files.entries()) {
    const path = join(dir, file);
    const image = decodeImage(path, await readImageFile(path), shape.channels);
    if (image.width !== shape.size || image.height !== shape.size) {
      if (o.resize === 'reject') {
        throw new DatasetError(
          path,
          `image is ${image.width}×${image.height} but the network's images are ${shape.size}×${shape.size} (resize: 'reject')`,
        );
      }
      images.set(resizeImage(image.values, image.width, image.height, shape.channels, shape.size), i * config.dataDim);
      resized += 1;
    } else {
      images.set(image.values, i * config.dataDim);
    }
    onProgress?.(i + 1, files.length);
  }
  return new ImageFolderDataset(
    dir,
    { classes, files, labels: Int32Array.from(labels), images, resized },
    { dataDim: config.dataDim, condSlots: config.condSlots },
  );
}

// The side and channels of the network's images: a DiT's own, or those an MLP's dataDim allows.
function imageShape(config: NetConfig, channels: number | undefined): { size: number; channels: number } {
  if (config.arch === 'dit') {
    if (channels !== undefined && channels !== config.channels) {
      throw new RangeError(`options.channels (${channels}) differs from the network's channels (${config.channels})`);
    }
    if (![1, 3, 4].includes(config.channels)) {
      throw new RangeError(`PNG images have 1, 3 or 4 channels; the network's images have ${config.channels}`);
    }
    return { size: config.imageSize, channels: config.channels };
  }
  const c = channels ?? 3;
  if (![1, 3, 4].includes(c)) throw new RangeError(`options.channels must be 1, 3 or 4, got ${c}`);
  const size = Math.round(Math.sqrt(config.dataDim / c));
  if (size * size * c !== config.dataDim) {
    throw new RangeError(`the network's dataDim ${config.dataDim} is not side² · ${c} for any side`);
  }
  return { size, channels: c };
}

// The class folders of dir, sorted by name; hidden entries and files at the top are skipped.
async function classFolders(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    const info = await stat(dir);
    if (!info.isDirectory()) throw new DatasetError(dir, 'is not a folder');
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    throw new DatasetError(dir, `cannot read the folder (${(error as Error).message})`, { cause: error });
  }
  if (entries.length === 0) throw new DatasetError(dir, 'folder is empty; expected DIR/<class>/*.png');
  const classes = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (classes.length === 0) throw new DatasetError(dir, 'folder has no class folders; expected DIR/<class>/*.png');
  return classes;
}

// The PNG files under folder (any depth), relative to root, sorted; any other visible file is an error.
async function pngFiles(root: string, folder: string): Promise<string[]> {
  const entries = (await readdir(folder, { withFileTypes: true }))
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files: string[] = [];
  for (const e of entries) {
    const path = join(folder, e.name);
    if (e.isDirectory()) files.push(...(await pngFiles(root, path)));
    else if (extname(e.name).toLowerCase() === '.png') files.push(relative(root, path));
    else throw new DatasetError(path, 'is not a PNG image (only .png files are read; remove or hide it)');
  }
  return files;
}

/** One decoded image: width × height × channels values in [−1, 1], HWC. */
interface DecodedImage {
  width: number;
  height: number;
  values: Float32Array;
}

// The bytes of an image file (the guarded reader: a regular file within READ_LIMITS.image), or a DatasetError.
async function readImageFile(path: string): Promise<Buffer> {
  try {
    return await readGuarded(path, 'image');
  } catch (error) {
    throw new DatasetError(path, `cannot read the image (${(error as Error).message})`, { cause: error });
  }
}

// Decodes a PNG of any bit depth and colour type into `channels` channels at full precision, or says why it cannot:
// its structure and size are checked first (checkPng), so that corrupt data is not read as black pixels and a
// huge declared size is refused before anything is allocated for it.
function decodeImage(path: string, bytes: Buffer, channels: number): DecodedImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    checkPng(bytes);
    png = PNG.sync.read(bytes, { skipRescale: true });
  } catch (error) {
    throw new DatasetError(path, `is not a readable PNG image (${(error as Error).message})`, { cause: error });
  }
  const { width, height, data } = png;
  // Palette entries are 8-bit; other samples have the file's depth (kept by skipRescale).
  const colorType: number = png.colorType; // @types/pngjs leaves out 3 (palette)
  const max = colorType === 3 ? 255 : 2 ** png.depth - 1;
  const colour = colorType === 2 || colorType === 3 || colorType === 6;
  if (channels === 1 && colour) {
    throw new DatasetError(path, "is a colour image but the network's images have 1 channel (grey)");
  }
  const pixels = width * height;
  const values = new Float32Array(pixels * channels);
  for (let p = 0; p < pixels; p++) {
    const alpha = data[p * 4 + 3] as number;
    if (channels !== 4 && alpha !== max) {
      throw new DatasetError(
        path,
        `has transparent pixels (alpha ${alpha}/${max} at x ${p % width}, y ${Math.floor(p / width)}) but the network's images have ${channels} channels, without alpha; flatten it first`,
      );
    }
    for (let c = 0; c < channels; c++) values[p * channels + c] = ((data[p * 4 + c] as number) / max) * 2 - 1;
  }
  return { width, height, values };
}
