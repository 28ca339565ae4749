// Image outputs: grids of generated RGB images as PNG (pngjs) and SVG charts rendered to PNG (resvg).
import { createRequire } from 'node:module';
import { PNG } from 'pngjs';
import type { Tensor } from '../core/tensor.js';
import { escapeXml } from './chart.js';

/** Options of imageGrid. */
export interface ImageGridOptions {
  /** Image side of each flattened sample (HWC, values in [−1, 1]). */
  size: number;
  /** Channels of each sample: 3 (RGB, the default) or 1 (grey). */
  channels?: number;
  /** Images per row (default: √n rounded up). */
  columns?: number;
  /** Pixels per image pixel (default 4). */
  scale?: number;
  /** Gap between images, in output pixels (default 2, grey). */
  gap?: number;
  /** A text for each row, written left of it (e.g. the prompt of the row's samples). */
  rowLabels?: readonly string[];
}

const LABEL_FONT_PX = 13;

/** The most pixels of a grid (2^26: 256 MiB of RGBA), checked before any is allocated. */
export const MAX_GRID_PIXELS = 2 ** 26;

/**
 * The size in pixels of the grid of `n` images (without row labels); a RangeError when it is above
 * MAX_GRID_PIXELS. Callers check it before they make the samples.
 */
export function gridSize(n: number, options: ImageGridOptions): { width: number; height: number } {
  const { size, scale = 4, gap = 2 } = options;
  const columns = options.columns ?? Math.ceil(Math.sqrt(n));
  const cell = size * scale + gap;
  const width = columns * cell + gap;
  const height = Math.ceil(n / columns) * cell + gap;
  if (width * height > MAX_GRID_PIXELS)
    throw new RangeError(
      `a grid of ${n} images in ${columns} columns is ${width}×${height} pixels, above the limit of ${MAX_GRID_PIXELS}`,
    );
  return { width, height };
}

/**
 * Encodes images, the rows of `samples` (n, size·size·channels, HWC, values in [−1, 1]), as one PNG grid: the bytes
 * that `MetricsLog.evaluation` takes as its sample grid (`{ png, prompts }`, with `rowLabels` beside the rows).
 */
export function imageGrid(samples: Tensor, options: ImageGridOptions): Buffer {
  const { size, channels = 3, scale = 4, gap = 2 } = options;
  const n = samples.shape[0] ?? 0;
  if (samples.shape.length !== 2 || samples.shape[1] !== size * size * channels || n < 1) {
    throw new RangeError(`imageGrid expects samples of shape [n, ${size * size * channels}]`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError('imageGrid supports 1 or 3 channels');
  const columns = options.columns ?? Math.ceil(Math.sqrt(n));
  const { width, height } = gridSize(n, { ...options, columns });
  const cell = size * scale + gap;
  const png = new PNG({ width, height });
  png.data.fill(128);
  const data = samples.storage;
  const byte = (v: number) => Math.max(0, Math.min(255, Math.round(((v + 1) / 2) * 255)));
  for (let k = 0; k < n; k++) {
    const ox = gap + (k % columns) * cell;
    const oy = gap + Math.floor(k / columns) * cell;
    for (let y = 0; y < size * scale; y++) {
      for (let x = 0; x < size * scale; x++) {
        const src = (k * size * size + Math.floor(y / scale) * size + Math.floor(x / scale)) * channels;
        const dst = ((oy + y) * png.width + ox + x) * 4;
        for (let c = 0; c < 3; c++) png.data[dst + c] = byte(data[src + (channels === 3 ? c : 0)] as number);
        png.data[dst + 3] = 255;
      }
    }
  }
  if (options.rowLabels === undefined) return PNG.sync.write(png);
  return PNG.sync.write(besideLabels(png, cell, gap, options.rowLabels));
}

// The grid with a white column on its left holding one label per row, centred on the row (text rendered by resvg).
function besideLabels(grid: PNG, cell: number, gap: number, labels: readonly string[]): PNG {
  const rows = Math.round((grid.height - gap) / cell);
  if (labels.length !== rows) throw new RangeError(`imageGrid: ${labels.length} row labels for ${rows} rows`);
  // About 0.6 em a character in DejaVu Sans, and a margin either side.
  const column = Math.ceil(Math.max(...labels.map((l) => l.length)) * LABEL_FONT_PX * 0.6) + 2 * LABEL_FONT_PX;
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${column}" height="${grid.height}" font-family="DejaVu Sans" font-size="${LABEL_FONT_PX}">`,
    `<rect width="${column}" height="${grid.height}" fill="white"/>`,
    ...labels.map(
      (label, row) =>
        `<text x="${column - LABEL_FONT_PX}" y="${gap + row * cell + (cell - gap) / 2}" text-anchor="end" dominant-baseline="central">${escapeXml(label)}</text>`,
    ),
    '</svg>',
  ].join('\n');
  const text = PNG.sync.read(svgToPng(svg));
  const out = new PNG({ width: column + grid.width, height: grid.height });
  for (let y = 0; y < grid.height; y++) {
    text.data.copy(out.data, y * out.width * 4, y * column * 4, (y + 1) * column * 4);
    grid.data.copy(out.data, (y * out.width + column) * 4, y * grid.width * 4, (y + 1) * grid.width * 4);
  }
  return out;
}

// resvg is loaded at its first use, not with the library: its native binary is one per platform, and a program that
// never draws a chart or a labelled grid should not need it.
const requireHere = createRequire(import.meta.url);

/** Renders an SVG (a chart) to PNG with resvg, using the system's fonts for its text. */
export function svgToPng(svg: string): Buffer {
  const { Resvg } = requireHere('@resvg/resvg-js') as typeof import('@resvg/resvg-js');
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
