// Row B6 (bench/NOTES.md): the seconds of a whole epoch of DiffusionNFT and of FlowGRPO on the shapes base network,
// by phase (rollout, rewards, training), ours beside the same epoch in PyTorch (bench/pytorch/epoch.py) at the same
// threads. Both score their samples with the same TypeScript reward: the peer sends its samples here.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadCheckpoint } from '../lib/checkpoint.js';
import { SHAPES_TRAINER_DEFAULTS } from '../lib/jobs/shapes.js';
import { packageRoot } from '../lib/native.js';
import * as shapes from '../lib/tasks/shapes/index.js';
import { Tensor } from '../lib/tensor.js';
import { DiffusionNFT } from '../lib/trainers/diffusion-nft.js';
import { FlowGRPO } from '../lib/trainers/flowgrpo.js';

export type EpochMethod = 'nft' | 'flowgrpo';

/** Seconds of one epoch's phases (ours: EpochStats.seconds; rollout includes drawing the prompts). */
export interface EpochPhases {
  rollout: number;
  reward: number;
  train: number;
  total: number;
}

/** The epoch's size and how many epochs run untimed, then timed (the median is reported). */
export interface EpochBench {
  groups: number;
  groupSize: number;
  warmup: number;
  epochs: number;
  threads: number;
  python: string;
}

/** The network both sides start from. */
export const EPOCH_BASE = join(packageRoot(), 'models', 'shapes-base.safetensors');

const PHASES = ['rollout', 'reward', 'train', 'total'] as const;

function medianPhases(epochs: readonly EpochPhases[]): EpochPhases {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return Object.fromEntries(PHASES.map((k) => [k, median(epochs.map((e) => e[k]))])) as unknown as EpochPhases;
}

/**
 * Our epochs from the shapes base with the trainers' shapes defaults (FlowGRPO without its zero-advantage filter);
 * returns the phases and the resolved options.
 */
export async function oursEpochs(
  method: EpochMethod,
  b: EpochBench,
): Promise<{ phases: EpochPhases; options: Record<string, unknown> }> {
  const options = {
    prompts: shapes.TRAIN_PROMPTS,
    rewards: { name: 'shapes', fn: shapes.reward },
    seed: 1,
    ...SHAPES_TRAINER_DEFAULTS[method],
    groups: b.groups,
    groupSize: b.groupSize,
    // FlowGRPO drops the samples of groups whose rewards are all equal; each side's rewards are of its own samples,
    // so the filter would make the two train different amounts. Every sample trains, in both.
    ...(method === 'flowgrpo' ? { filterZeroAdvantage: false } : {}),
  };
  const { net } = await loadCheckpoint(EPOCH_BASE);
  try {
    const trainer = method === 'nft' ? new DiffusionNFT(net, options) : new FlowGRPO(net, options);
    for (let i = 0; i < b.warmup; i++) await trainer.epoch();
    const timed: EpochPhases[] = [];
    for (let i = 0; i < b.epochs; i++) {
      const { sample, reward, train, total } = (await trainer.epoch()).seconds;
      timed.push({ rollout: sample, reward, train, total });
    }
    return { phases: medianPhases(timed), options: trainer.resolvedOptions };
  } finally {
    net.dispose();
  }
}

/** The scores of a batch the peer sent: base64 float32 samples (n, D) and the index of each one's prompt. */
function scorePeerBatch(request: { prompts: number[]; samples: string }): number[] {
  const bytes = Buffer.from(request.samples, 'base64');
  const samples = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const prompts = request.prompts.map((i) => {
    const prompt = shapes.TRAIN_PROMPTS[i];
    if (prompt === undefined) throw new RangeError(`the peer asked to score prompt ${i}`);
    return prompt;
  });
  return shapes.reward(Tensor.from(samples, [prompts.length, shapes.DATA_DIM]), prompts);
}

/**
 * The PyTorch peer's epochs with the same resolved options, serving its rewards. Rejects with the peer's last
 * error line if it fails.
 */
export function peerEpochs(
  method: EpochMethod,
  options: Record<string, unknown>,
  b: EpochBench,
): Promise<{ phases: EpochPhases; torch: string; blas: string }> {
  const script = join(packageRoot(), 'bench', 'pytorch', 'epoch.py');
  const args = [
    script,
    'epoch',
    ...['--method', method, '--checkpoint', EPOCH_BASE, '--options', JSON.stringify(options)],
    ...['--prompts', JSON.stringify(shapes.TRAIN_PROMPTS.map((p) => p.tokens))],
    ...['--threads', String(b.threads), '--warmup', String(b.warmup), '--epochs', String(b.epochs)],
  ];
  const child = spawn(b.python, args, {
    env: { ...process.env, OMP_NUM_THREADS: String(b.threads) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let result: { median: EpochPhases; torch_version: string; blas: string } | undefined;
    let failure: Error | undefined;
    child.on('error', reject);
    // A peer that died mid-epoch breaks the pipe: its exit, below, reports why.
    child.stdin.on('error', () => {});
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const message = JSON.parse(line);
        if (message.score) child.stdin.write(`${JSON.stringify({ rewards: scorePeerBatch(message.score) })}\n`);
        else if (message.result) result = message.result;
      } catch (error) {
        failure ??= error as Error;
        child.stdin.end();
      }
    });
    child.on('close', (code) => {
      if (code === 0 && result !== undefined && failure === undefined) {
        resolve({ phases: result.median, torch: result.torch_version, blas: result.blas });
        return;
      }
      const last = stderr.trim().split('\n').at(-1);
      reject(failure ?? new Error(`the PyTorch epoch exited with ${code}: ${last ?? 'no output'}`));
    });
  });
}
