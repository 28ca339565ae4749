// LoRA post-training from the shipped base: DiffusionNFT trains rank-8 adapters of the shapes base network (a
// 16×16 RGB diffusion transformer) on the shapes prompts' reward, then saves the adapter in PEFT's format (a folder
// that peft.PeftModel.from_pretrained reads) and the adapted network as an ONNX model, the adapter folded in.
//   EPOCHS, OUT: the run's size and output folder (defaults 10 and 'lora-shapes'; the tests run it tiny).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiffusionNFT, exportOnnx, loadCheckpoint, savePeftAdapter, tasks } from 'diffusion-nft';

const EPOCHS = Number(process.env.EPOCHS ?? 10);
const OUT = process.env.OUT ?? 'lora-shapes';

// The base network ships inside the package.
const base = fileURLToPath(new URL('models/shapes-base.safetensors', import.meta.resolve('diffusion-nft/package.json')));
const { net } = await loadCheckpoint(base);
const { shapes } = tasks;

const nft = new DiffusionNFT(net, {
  prompts: shapes.TRAIN_PROMPTS,
  rewards: { name: 'shapes', fn: shapes.reward }, // partial credit for each object the prompt asks for
  lora: { rank: 8, alpha: 16 }, // the base stays frozen; only the adapters train
  groups: 4,
  groupSize: 4,
  lr: 3e-4,
});
await nft.run({ epochs: EPOCHS, onProgress: (s) => console.log(`epoch ${s.epoch}: reward ${s.reward.toFixed(3)}`) });

console.log(`trainable: ${net.lora?.paramCount} adapter parameters of ${net.paramCount}`);
await savePeftAdapter(join(OUT, 'adapter'), net); // adapter_model.safetensors + adapter_config.json
await exportOnnx(net, join(OUT, 'model.onnx')); // opset 17; inputs x, t, cond; output v
console.log(`wrote ${join(OUT, 'adapter')} and ${join(OUT, 'model.onnx')}`);
net.dispose();
