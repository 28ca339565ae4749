// `npm run bench -- lora` (row B5-LoRA, docs/lora.md): one DiffusionNFT epoch on shapes from the shipped base with
// every weight trained (lr 1e-4) beside LoRA at the official settings (rank 32, alpha 64, attention qkv and output,
// lr 3e-4): seconds per epoch, the floats the native model holds for its parameter sets (θ, θ_old, θ_ref, EMA) and
// training state (gradient, AdamW moments), and the process's peak RSS. Each mode runs in its own process
// (`--worker MODE`), so one's memory does not hide the other's.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../lib/core/native.js';
import { DiffusionNFT, loadCheckpoint, setThreads, tasks } from '../lib/index.js';
import { SHAPES_TRAINER_DEFAULTS } from '../lib/jobs/shapes/train.js';

const EPOCHS = Number(process.env.DNFT_BENCH_LORA_EPOCHS ?? 3);
const THREADS = Number(process.env.DNFT_BENCH_THREADS ?? 2);
const MODES = {
  full: { lr: 1e-4 },
  lora: { lr: 3e-4, lora: { rank: 32, alpha: 64 } },
} as const;
type Mode = keyof typeof MODES;

interface Measurement {
  seconds: number;
  params: number;
  trained: number;
  parameterSets: number;
  trainingState: number;
  peakRssMiB: number;
}

async function worker(mode: Mode): Promise<void> {
  setThreads(THREADS);
  const { net } = await loadCheckpoint(join(packageRoot(), 'models', 'shapes-base.safetensors'));
  const trainer = new DiffusionNFT(net, {
    prompts: tasks.shapes.TRAIN_PROMPTS,
    rewards: { name: 'shapes', fn: tasks.shapes.reward },
    seed: 1,
    ...SHAPES_TRAINER_DEFAULTS.nft,
    klCoef: 1e-4, // so θ_ref is held too
    ...MODES[mode],
  });
  await trainer.epoch(); // warm-up: first-touch pages, the pool's start-up
  const started = performance.now();
  for (let e = 0; e < EPOCHS; e++) await trainer.epoch();
  const seconds = (performance.now() - started) / 1000 / EPOCHS;
  const m: Measurement = {
    seconds,
    params: net.paramCount,
    trained: net.lora?.paramCount ?? net.paramCount,
    ...net.model.allocatedFloats(),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  console.log(JSON.stringify(m));
  net.dispose();
}

function measure(mode: Mode): Measurement {
  const out = execFileSync('node', [fileURLToPath(import.meta.url), '--worker', mode], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop() as string);
}

if (process.argv[2] === '--worker') {
  await worker(process.argv[3] as Mode);
} else {
  console.log(
    `DiffusionNFT on shapes from models/shapes-base.safetensors, ${SHAPES_TRAINER_DEFAULTS.nft.groups} groups × ${SHAPES_TRAINER_DEFAULTS.nft.groupSize}, KL on, ${THREADS} threads, mean of ${EPOCHS} epochs after one warm-up`,
  );
  const full = measure('full');
  const lora = measure('lora');
  const mib = (floats: number) => ((4 * floats) / 2 ** 20).toFixed(1);
  console.log('\n| row | what | full fine-tuning | LoRA r32 α64 | ratio (LoRA / full) |');
  console.log('| --- | --- | --- | --- | --- |');
  const line = (what: string, a: number, b: number, fmt: (v: number) => string) =>
    console.log(`| B5-LoRA | ${what} | ${fmt(a)} | ${fmt(b)} | ${(b / a).toFixed(3)} |`);
  line('trained floats', full.trained, lora.trained, String);
  line('parameter sets (MiB)', full.parameterSets, lora.parameterSets, mib);
  line('gradient + AdamW moments (MiB)', full.trainingState, lora.trainingState, mib);
  line('peak RSS (MiB)', full.peakRssMiB, lora.peakRssMiB, (v) => v.toFixed(0));
  line('seconds per epoch', full.seconds, lora.seconds, (v) => v.toFixed(2));
}
