// Sampling a trained model to a PNG grid, in Node and through ONNX Runtime: the shipped shapes base (or CHECKPOINT)
// samples a few prompts natively, then the same model, exported to ONNX, samples them again in onnxruntime-node
// under the same solver from the same noise. Both grids are written, and their largest difference printed.
//   CHECKPOINT, OUT: the model and the output folder (defaults: the shipped base, 'sample-grid').
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportOnnx, imageGrid, loadCheckpoint, onnxModel, sample, Tensor, tasks } from 'diffusion-nft';
import * as ort from 'onnxruntime-node';

const OUT = process.env.OUT ?? 'sample-grid';
const checkpoint =
  process.env.CHECKPOINT ??
  fileURLToPath(new URL('models/shapes-base.safetensors', import.meta.resolve('diffusion-nft/package.json')));
const { net } = await loadCheckpoint(checkpoint);
const { shapes } = tasks;

// Four prompts, eight samples each: one row of the grid per prompt.
const prompts = shapes.TEST_PROMPTS.slice(0, 4);
const perPrompt = 8;
const tokens = prompts.flatMap((p) => Array.from({ length: perPrompt }, () => p.tokens)).flat();
const cond = Tensor.fromInt32(Int32Array.from(tokens), [prompts.length * perPrompt, shapes.SLOTS]);
const options = { cond, solver: 'dpm2' as const, steps: 10, cfgScale: 3, seed: 1 };
const grid = { size: shapes.IMAGE_SIZE, columns: perPrompt, scale: 4, rowLabels: prompts.map((p) => p.text) };

await mkdir(OUT, { recursive: true });
const native = await sample(net, options);
await writeFile(join(OUT, 'native.png'), imageGrid(native.x, grid));

// The same model in ONNX Runtime: its velocity function drives the package's solvers.
const file = join(OUT, 'model.onnx');
await exportOnnx(net, file);
const session = await ort.InferenceSession.create(file);
const viaOrt = await sample(onnxModel(session, ort), { ...options, dataDim: net.config.dataDim });
await writeFile(join(OUT, 'onnxruntime.png'), imageGrid(viaOrt.x, grid));

let largest = 0;
for (let i = 0; i < native.x.size; i++) {
  largest = Math.max(largest, Math.abs((native.x.storage[i] as number) - (viaOrt.x.storage[i] as number)));
}
console.log(`wrote ${OUT}/native.png and ${OUT}/onnxruntime.png; largest difference ${largest.toExponential(1)}`);
await session.release();
net.dispose();
