// Image outputs: grids of generated RGB images as PNG (pngjs) and SVG charts rendered to PNG (resvg).
import { Resvg } from '@resvg/resvg-js';
import { PNG } from 'pngjs';
import type { Tensor } from './tensor.js';

/** Options of writeImageGrid. */
export interface GridOptions {
  /** Image side and channels of each flattened sample (HWC, values in [−1, 1]). */
  size: number;
  channels?: number;
  /** Images per row (default: √n rounded up). */
  columns?: number;
  /** Pixels per image pixel (default 4). */
  scale?: number;
  /** Gap between images, in output pixels (default 2, grey). */
  gap?: number;
}

/** Encodes samples (n, size·size·channels) as one PNG grid. */
export function imageGrid(samples: Tensor, options: GridOptions): Buffer {
  const { size, channels = 3, scale = 4, gap = 2 } = options;
  const n = samples.shape[0] ?? 0;
  if (samples.shape.length !== 2 || samples.shape[1] !== size * size * channels || n < 1) {
    throw new RangeError(`imageGrid expects samples of shape [n, ${size * size * channels}]`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError('imageGrid supports 1 or 3 channels');
  const columns = options.columns ?? Math.ceil(Math.sqrt(n));
  const rows = Math.ceil(n / columns);
  const cell = size * scale + gap;
  const png = new PNG({ width: columns * cell + gap, height: rows * cell + gap });
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
  return PNG.sync.write(png);
}

/** Renders an SVG (a chart) to PNG with resvg, using the system's fonts for its text. */
export function svgToPng(svg: string): Buffer {
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
}
