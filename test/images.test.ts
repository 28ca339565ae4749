// Sample grids with a label beside each row.
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { Tensor } from '../lib/core/tensor.js';
import { imageGrid } from '../lib/images/png.js';

const size = 4;
const samples = Tensor.randn([6, size * size * 3], { seed: 1, stream: 16 });

describe('imageGrid row labels', () => {
  it('writes each label left of its row and keeps the images as they are', () => {
    const plain = PNG.sync.read(imageGrid(samples, { size, columns: 3 }));
    const labelled = PNG.sync.read(
      imageGrid(samples, { size, columns: 3, rowLabels: ['a red circle', 'two squares'] }),
    );
    expect(labelled.height).toBe(plain.height);
    const column = labelled.width - plain.width;
    expect(column).toBeGreaterThan('a red circle'.length * 6);
    // The grid sits unchanged right of the label column.
    let differing = 0;
    for (let y = 0; y < plain.height; y++) {
      for (let x = 0; x < plain.width; x++) {
        const a = (y * plain.width + x) * 4;
        const b = (y * labelled.width + column + x) * 4;
        for (let c = 0; c < 3; c++)
          differing += Math.abs((plain.data[a + c] ?? 0) - (labelled.data[b + c] ?? 0)) > 1 ? 1 : 0;
      }
    }
    expect(differing).toBe(0);
    // Dark text pixels in the label column, within each row's band.
    const cell = (plain.height - 2) / 2;
    for (let row = 0; row < 2; row++) {
      let dark = 0;
      for (let y = 2 + row * cell; y < 2 + (row + 1) * cell; y++) {
        for (let x = 0; x < column; x++) if ((labelled.data[(y * labelled.width + x) * 4] ?? 255) < 100) dark += 1;
      }
      expect(dark, `row ${row}`).toBeGreaterThan(20);
    }
  });

  it('needs one label per row', () => {
    expect(() => imageGrid(samples, { size, columns: 3, rowLabels: ['only one'] })).toThrow(/1 row labels for 2 rows/);
  });
});
