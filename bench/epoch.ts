// Row B6 (bench/NOTES.md): the seconds of a whole epoch of DiffusionNFT and of FlowGRPO on the shapes base network,
// by phase (rollout, rewards, training), ours beside the same epoch in PyTorch (bench/pytorch/epoch.py) at the same
// threads, alternating. Both score their samples with the same TypeScript reward: the peer sends its samples here.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../lib/core/native.js';
import { Tensor } from '../lib/core/tensor.js';
import { SHAPES_TRAINER_DEFAULTS } from '../lib/jobs/shapes/train.js';
import { loadCheckpoint } from '../lib/model/checkpoint.js';
import * as shapes from '../lib/tasks/shapes/index.js';
import { DiffusionNFT } from '../lib/training/diffusion-nft.js';
import { FlowGRPO } from '../lib/training/flowgrpo.js';
import { peerEnv } from './peer-env.js';

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
const EPOCH_BASE = join(packageRoot(), 'models', 'shapes-base.safetensors');

const PHASES = ['rollout', 'reward', 'train', 'total'] as const;

function medianPhases(epochs: readonly EpochPhases[]): EpochPhases {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  return Object.fromEntries(PHASES.map((k) => [k, median(epochs.map((e) => e[k]))])) as unknown as EpochPhases;
}

/** The trainer of a method from the shapes base, with the trainers' shapes defaults (FlowGRPO without its filter). */
async function ourTrainer(
  method: EpochMethod,
  b: EpochBench,
): Promise<DiffusionNFT<shapes.ShapesPrompt> | FlowGRPO<shapes.ShapesPrompt>> {
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
    return method === 'nft' ? new DiffusionNFT(net, options) : new FlowGRPO(net, options);
  } catch (error) {
    net.dispose();
    throw error;
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
 * The PyTorch peer (bench/pytorch/epoch.py serve) with the same resolved options: it runs an epoch when asked and
 * its rewards are served here. Calls reject with the peer's last error line if it fails.
 */
class PeerEpochs {
  readonly torch: string;
  readonly blas: string;
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: Waiter[];

  private constructor(child: ChildProcessWithoutNullStreams, waiting: Waiter[], ready: Ready) {
    this.#child = child;
    this.#waiting = waiting;
    this.torch = ready.torch_version;
    this.blas = ready.blas;
  }

  static async start(method: EpochMethod, options: Record<string, unknown>, b: EpochBench): Promise<PeerEpochs> {
    const script = join(packageRoot(), 'bench', 'pytorch', 'epoch.py');
    const args = [
      script,
      'serve',
      ...['--method', method, '--checkpoint', EPOCH_BASE, '--options', JSON.stringify(options)],
      ...['--prompts', JSON.stringify(shapes.TRAIN_PROMPTS.map((p) => p.tokens))],
      ...['--threads', String(b.threads)],
    ];
    const child = spawn(b.python, args, {
      env: peerEnv(b.threads),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    // Answers to the requests, in order: 'ready' first, then one 'epoch' per epoch().
    const waiting: Waiter[] = [];
    const fail = (error: Error) => {
      for (const w of waiting.splice(0)) w.reject(error);
    };
    child.on('error', fail);
    // A peer that died mid-epoch breaks the pipe: its exit, below, reports why.
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      const last = stderr.trim().split('\n').at(-1);
      fail(new Error(`the PyTorch epoch exited with ${code}: ${last || 'no output'}`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const message = JSON.parse(line) as Record<string, unknown>;
        if (message.score) {
          const rewards = scorePeerBatch(message.score as { prompts: number[]; samples: string });
          child.stdin.write(`${JSON.stringify({ rewards })}\n`);
        } else {
          waiting.shift()?.resolve(message);
        }
      } catch (error) {
        fail(error as Error);
        child.kill();
      }
    });
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => waiting.push({ resolve, reject }));
    return new PeerEpochs(child, waiting, ready.ready as Ready);
  }

  /** One epoch of the peer: the seconds of its phases. */
  async epoch(): Promise<EpochPhases> {
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => this.#waiting.push({ resolve, reject }));
    this.#child.stdin.write(`${JSON.stringify({ epoch: true })}\n`);
    return (await answer).epoch as EpochPhases;
  }

  /** Ends the peer (its exit status is not awaited). */
  close(): void {
    this.#child.stdin.end();
  }
}

/** A request to the peer awaiting its answer line. */
interface Waiter {
  resolve: (message: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

interface Ready {
  torch_version: string;
  blas: string;
}

/**
 * Row B6 of a method: our epochs and the peer's alternate (first the untimed ones), so that both see the same load of
 * a shared machine; the median phases of the timed ones. The peer's failure is returned, not thrown.
 */
export async function epochRow(
  method: EpochMethod,
  b: EpochBench,
): Promise<{ ours: EpochPhases; peer: EpochPhases | Error; torch?: string; blas?: string }> {
  const trainer = await ourTrainer(method, b);
  let peer: PeerEpochs | Error | undefined;
  try {
    peer = await PeerEpochs.start(method, trainer.resolvedOptions, b).catch((error: Error) => error);
    const ours: EpochPhases[] = [];
    const theirs: EpochPhases[] = [];
    for (let i = 0; i < b.warmup + b.epochs; i++) {
      const { sample, reward, train, total } = (await trainer.epoch()).seconds;
      if (i >= b.warmup) ours.push({ rollout: sample, reward, train, total });
      if (peer instanceof PeerEpochs) {
        const phases: EpochPhases | Error = await peer.epoch().catch((error: Error) => error);
        if (phases instanceof Error) peer = phases;
        else if (i >= b.warmup) theirs.push(phases);
      }
    }
    if (!(peer instanceof PeerEpochs)) return { ours: medianPhases(ours), peer };
    return { ours: medianPhases(ours), peer: medianPhases(theirs), torch: peer.torch, blas: peer.blas };
  } finally {
    if (peer instanceof PeerEpochs) peer.close();
    trainer.net.dispose();
  }
}
