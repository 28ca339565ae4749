// Resampling of HWC images to a square side: separable antialiased bilinear, the filter of PyTorch's
// interpolate(mode='bilinear', antialias=True, align_corners=False) and of PIL's BILINEAR resize. Upscaling it is
// plain bilinear interpolation; downscaling it widens the triangle to the scale, so every source pixel contributes.

/** The source pixels and weights of each output position along one axis: `first` and `weights` per output. */
interface AxisWeights {
  first: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  taps: number;
}

// PyTorch's _compute_weights_aa (aten/src/ATen/native/UpSample.h) for interp_size 2 (the triangle filter).
function axisWeights(inSize: number, outSize: number): AxisWeights {
  const scale = inSize / outSize;
  const support = Math.max(scale, 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let i = 0; i < outSize; i++) {
    const centre = scale * (i + 0.5);
    const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
    const n = Math.min(Math.trunc(centre + support + 0.5), inSize) - lo;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const w = Math.max(0, 1 - Math.abs((j + lo - centre + 0.5) * invScale));
      weights[i * taps + j] = w;
      total += w;
    }
    for (let j = 0; j < n; j++) weights[i * taps + j] = total > 0 ? (weights[i * taps + j] as number) / total : 0;
    first[i] = lo;
    count[i] = n;
  }
  return { first, count, weights, taps };
}

/**
 * Resamples an HWC image (width × height × channels values) to size × size, in float64, horizontally then
 * vertically. A non-square image is stretched to the square.
 */
export function resizeImage(
  source: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  size: number,
): Float64Array {
  if (source.length !== width * height * channels) throw new RangeError('resizeImage: source size mismatch');
  const h = axisWeights(width, size);
  const v = axisWeights(height, size);
  // Rows of the source, each resampled to `size` columns.
  const rows = new Float64Array(height * size * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < size; x++) {
      const lo = h.first[x] as number;
      const n = h.count[x] as number;
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let j = 0; j < n; j++) {
          sum += (h.weights[x * h.taps + j] as number) * (source[(y * width + lo + j) * channels + c] as number);
        }
        rows[(y * size + x) * channels + c] = sum;
      }
    }
  }
  const out = new Float64Array(size * size * channels);
  for (let y = 0; y < size; y++) {
    const lo = v.first[y] as number;
    const n = v.count[y] as number;
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let j = 0; j < n; j++) {
          sum += (v.weights[y * v.taps + j] as number) * (rows[((lo + j) * size + x) * channels + c] as number);
        }
        out[(y * size + x) * channels + c] = sum;
      }
    }
  }
  return out;
}
