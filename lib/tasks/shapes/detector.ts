// The detector of the `shapes` world, GenEval's object detector in miniature: colour segmentation, connected
// components, shape classification by the corner pattern of each component's box, centroids.
import {
  BACKGROUND,
  CHANNELS,
  COLOURS,
  type Colour,
  covers,
  IMAGE_SIZE,
  PALETTE,
  SHAPES,
  type Shape,
} from './world.js';

/** One detected component: its colour, its shape (null when it is no recognisable object), area, box and centroid. */
export interface Detection {
  /** The palette colour of its pixels. */
  colour: Colour;
  /** The shape it matches best, or null when it matches none well enough. */
  shape: Shape | null;
  /** Its pixel count. */
  area: number;
  /** The column of its centroid, in pixels from the left. */
  cx: number;
  /** The row of its centroid, in pixels from the top. */
  cy: number;
  /** Its bounding box in pixels, both corners inclusive. */
  box: {
    /** The leftmost column. */
    x0: number;
    /** The top row. */
    y0: number;
    /** The rightmost column. */
    x1: number;
    /** The bottom row. */
    y1: number;
  };
}

// A pixel takes the nearest palette colour when within this squared RGB distance (in [−1, 1] units) and nearer to
// it than to the background; otherwise it is background. Generated pixels are noisy, so the tolerance is wide.
const MAX_COLOUR_DISTANCE2 = 1.5;
// Components below this area are specks, ignored; objects are 13–36 pixels.
const MIN_AREA = 6;

function pixelColour(image: Float32Array, p: number): number {
  const r = image[p * CHANNELS] as number;
  const g = image[p * CHANNELS + 1] as number;
  const b = image[p * CHANNELS + 2] as number;
  const d2 = (c: readonly number[]) =>
    (r - (c[0] as number)) ** 2 + (g - (c[1] as number)) ** 2 + (b - (c[2] as number)) ** 2;
  let best = -1;
  let bestD = d2(BACKGROUND);
  COLOURS.forEach((colour, k) => {
    const d = d2(PALETTE[colour]);
    if (d < bestD && d <= MAX_COLOUR_DISTANCE2) {
      best = k;
      bestD = d;
    }
  });
  return best;
}

// A component is the shape whose rendered template (core of the renderer: `covers`) overlaps it best, when that
// intersection-over-union reaches this: clean renders match their template exactly (1.0), a generator's rounded or
// ragged shapes still match well, and specks, streaks and merged blobs do not.
const MIN_TEMPLATE_IOU = 0.6;

/**
 * Shape by template matching: the component against every shape's template of a similar size, placed around the
 * component's box; null when nothing matches well or the box is not object-sized (4–9 pixels, roughly square).
 */
function classify(mask: (x: number, y: number) => boolean, box: Detection['box'], area: number): Shape | null {
  const w = box.x1 - box.x0 + 1;
  const h = box.y1 - box.y0 + 1;
  if (w < 4 || h < 4 || w > 9 || h > 9 || Math.abs(w - h) > 3) return null;
  let best: Shape | null = null;
  let bestIou = MIN_TEMPLATE_IOU;
  const side = Math.max(w, h);
  for (const shape of SHAPES) {
    for (let size = Math.max(4, side - 1); size <= Math.min(9, side + 1); size++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const o = {
            shape,
            colour: 'red' as const,
            size,
            x: box.x0 + Math.floor((w - size) / 2) + dx,
            y: box.y0 + Math.floor((h - size) / 2) + dy,
          };
          let inter = 0;
          let templateArea = 0;
          for (let y = Math.min(o.y, box.y0); y <= Math.max(o.y + size - 1, box.y1); y++) {
            for (let x = Math.min(o.x, box.x0); x <= Math.max(o.x + size - 1, box.x1); x++) {
              const t = covers(o, x, y);
              if (t) templateArea++;
              if (t && x >= box.x0 && x <= box.x1 && y >= box.y0 && y <= box.y1 && mask(x, y)) inter++;
            }
          }
          const iou = inter / (area + templateArea - inter);
          if (iou > bestIou) {
            bestIou = iou;
            best = shape;
          }
        }
      }
    }
  }
  return best;
}

/** The components of an image (D = 16·16·3 values), largest first; specks below 6 pixels are dropped. */
export function detect(image: Float32Array): Detection[] {
  const n = IMAGE_SIZE * IMAGE_SIZE;
  const labels = new Int8Array(n);
  for (let p = 0; p < n; p++) labels[p] = pixelColour(image, p);
  const seen = new Uint8Array(n);
  const detections: Detection[] = [];
  for (let start = 0; start < n; start++) {
    if (labels[start] === -1 || seen[start]) continue;
    const label = labels[start] as number;
    // 4-connected flood fill of one colour.
    const stack = [start];
    const members: number[] = [];
    seen[start] = 1;
    while (stack.length > 0) {
      const p = stack.pop() as number;
      members.push(p);
      const x = p % IMAGE_SIZE;
      const y = (p - x) / IMAGE_SIZE;
      for (const [nx, ny] of [
        [x - 1, y],
        [x + 1, y],
        [x, y - 1],
        [x, y + 1],
      ] as const) {
        const q = ny * IMAGE_SIZE + nx;
        if (nx >= 0 && ny >= 0 && nx < IMAGE_SIZE && ny < IMAGE_SIZE && !seen[q] && labels[q] === label) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (members.length < MIN_AREA) continue;
    const inside = new Set(members);
    const box = { x0: IMAGE_SIZE, y0: IMAGE_SIZE, x1: -1, y1: -1 };
    let sx = 0;
    let sy = 0;
    for (const p of members) {
      const x = p % IMAGE_SIZE;
      const y = (p - x) / IMAGE_SIZE;
      box.x0 = Math.min(box.x0, x);
      box.y0 = Math.min(box.y0, y);
      box.x1 = Math.max(box.x1, x);
      box.y1 = Math.max(box.y1, y);
      sx += x + 0.5;
      sy += y + 0.5;
    }
    const shape = classify((x, y) => inside.has(y * IMAGE_SIZE + x), box, members.length);
    detections.push({
      colour: COLOURS[label] as Colour,
      shape,
      area: members.length,
      cx: sx / members.length,
      cy: sy / members.length,
      box,
    });
  }
  return detections.sort((a, b) => b.area - a.area);
}
