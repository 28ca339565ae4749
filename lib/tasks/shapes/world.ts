// The `shapes` world: 16×16 RGB images of small circles, squares and triangles in four colours on a black
// background, rendered deterministically. Pixels are in [−1, 1], flattened in HWC order: ((y·16 + x)·3 + c).
import { native } from '../../core/native.js';

/** Image side, in pixels. */
export const IMAGE_SIZE = 16;
/** Channels of a pixel: RGB. */
export const CHANNELS = 3;
/** D of the flattened image. */
export const DATA_DIM = IMAGE_SIZE * IMAGE_SIZE * CHANNELS;

/** The shapes an object can have. */
export const SHAPES = ['circle', 'square', 'triangle'] as const;
/** One of the SHAPES. */
export type Shape = (typeof SHAPES)[number];
/** The colours an object can have. */
export const COLOURS = ['red', 'green', 'blue', 'yellow'] as const;
/** One of the COLOURS. */
export type Colour = (typeof COLOURS)[number];

/** RGB of each colour in [−1, 1]; the background is black. */
export const PALETTE: Readonly<Record<Colour, readonly [number, number, number]>> = {
  red: [1, -1, -1],
  green: [-1, 1, -1],
  blue: [-1, -1, 1],
  yellow: [1, 1, -1],
};
/** RGB of the background, black. */
export const BACKGROUND: readonly [number, number, number] = [-1, -1, -1];

/** Side lengths (pixels) of an object's bounding box. */
export const SIZES = [5, 6] as const;

/** One object of a scene: its top-left corner and side. */
export interface SceneObject {
  /** Its shape. */
  shape: Shape;
  /** Its colour. */
  colour: Colour;
  /** The column of its box's top-left pixel. */
  x: number;
  /** The row of its box's top-left pixel. */
  y: number;
  /** Its box's side, in pixels (one of SIZES). */
  size: number;
}

/** Whether pixel (px, py) of an object's box is covered (pixel centres inside the shape). */
export function covers(o: SceneObject, px: number, py: number): boolean {
  const u = px - o.x + 0.5;
  const v = py - o.y + 0.5;
  const s = o.size;
  if (u < 0 || v < 0 || u > s || v > s) return false;
  if (o.shape === 'square') return true;
  if (o.shape === 'circle') return (u - s / 2) ** 2 + (v - s / 2) ** 2 <= (s / 2) ** 2;
  // An upward isosceles triangle: apex at the top middle, base along the bottom.
  return Math.abs(u - s / 2) <= (v / s) * (s / 2);
}

/** Renders objects into a new flattened image (D values in [−1, 1]). */
export function render(objects: readonly SceneObject[]): Float32Array {
  const image = new Float32Array(DATA_DIM);
  for (let p = 0; p < IMAGE_SIZE * IMAGE_SIZE; p++) image.set(BACKGROUND, p * CHANNELS);
  for (const o of objects) {
    for (let py = o.y; py < o.y + o.size; py++) {
      for (let px = o.x; px < o.x + o.size; px++) {
        if (px >= 0 && py >= 0 && px < IMAGE_SIZE && py < IMAGE_SIZE && covers(o, px, py)) {
          image.set(PALETTE[o.colour], (py * IMAGE_SIZE + px) * CHANNELS);
        }
      }
    }
  }
  return image;
}

/** Uniform draws in [0, 1) from Philox stream `stream` of `seed`, consumed in order. */
export class Draws {
  readonly #values: Float32Array;
  #next = 0;
  constructor(seed: number, stream: number, offset: number, count: number) {
    this.#values = new Float32Array(count);
    native().randomFill(this.#values, seed, stream, offset, 'uniform');
  }
  /** A uniform number in [0, 1). */
  next(): number {
    if (this.#next >= this.#values.length) throw new Error('Draws: out of random numbers');
    return Math.min(this.#values[this.#next++] as number, 0.99999994);
  }
  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A uniform element of a list. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T;
  }
}

/** Whether two boxes keep at least one pixel of background between them. */
export function separated(a: SceneObject, b: SceneObject): boolean {
  return a.x + a.size < b.x || b.x + b.size < a.x || a.y + a.size < b.y || b.y + b.size < a.y;
}

/** The centre of an object's box. */
export function centre(o: SceneObject): [number, number] {
  return [o.x + o.size / 2, o.y + o.size / 2];
}
