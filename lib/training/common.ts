// What the online RL trainers share: prompts, reward functions and their checks, prompt groups, histograms.
import { NumericError, RewardError } from '../core/errors.js';
import { native } from '../core/native.js';
import type { Tensor } from '../core/tensor.js';

/** A prompt: its condition tokens (one per slot of the network) and anything else a reward needs. */
export interface Prompt {
  /** The condition tokens, one per slot (condSlots of the network's config). */
  readonly tokens: readonly number[];
  /** The prompt in words, for logs and sample grids. */
  readonly text?: string;
}

/** A reward: one finite score per sample, given the samples (n, D) and the prompt of each. */
export type RewardFn<P extends Prompt = Prompt> = (
  samples: Tensor,
  prompts: readonly P[],
) => ArrayLike<number> | Promise<ArrayLike<number>>;

/** A reward with a name and a weight in the sum. */
export interface NamedReward<P extends Prompt = Prompt> {
  /** The reward's name in the statistics (`rewards`) and in errors. */
  name: string;
  /** The reward function. */
  fn: RewardFn<P>;
  /** Its weight in the sum, a finite number (default 1). */
  weight?: number;
}

/** One reward, or several combined as a weighted sum (docs/algorithms.md §1.4). */
export type Rewards<P extends Prompt = Prompt> =
  | RewardFn<P>
  | NamedReward<P>
  | readonly (RewardFn<P> | NamedReward<P>)[];

/** Rewards resolved to named, weighted entries. */
export type ResolvedRewards<P extends Prompt> = readonly Required<NamedReward<P>>[];

/** Checks and names the rewards option. */
export function resolveRewards<P extends Prompt>(rewards: unknown): ResolvedRewards<P> {
  const list = Array.isArray(rewards) ? rewards : [rewards];
  if (list.length === 0) throw new TypeError('options.rewards must name at least one reward');
  return list.map((entry, i) => {
    if (typeof entry === 'function') return { name: entry.name || `reward${i}`, fn: entry as RewardFn<P>, weight: 1 };
    if (entry === null || typeof entry !== 'object' || typeof (entry as NamedReward<P>).fn !== 'function') {
      throw new TypeError(`options.rewards[${i}] must be a function or { name, fn, weight }`);
    }
    const { name, fn, weight = 1 } = entry as NamedReward<P>;
    if (typeof name !== 'string' || name === '') throw new TypeError(`options.rewards[${i}].name must be a string`);
    if (typeof weight !== 'number' || !Number.isFinite(weight)) {
      throw new RangeError(`options.rewards[${i}].weight must be a finite number`);
    }
    return { name, fn, weight };
  });
}

/** The weighted total and each reward's own scores for one batch of samples. */
export interface Scores {
  total: Float64Array;
  parts: Record<string, Float64Array>;
}

/** How long a reward may take, and how often a failed or timed-out call is repeated. */
export interface RewardPolicy {
  /** Milliseconds one call may take before it counts as failed (0: no limit). */
  timeoutMs: number;
  /** Further attempts after a call throws, rejects or times out. */
  retries: number;
}

/** One answer of a reward, within the policy's time; its failures become RewardErrors naming it. */
async function callReward<P extends Prompt>(
  reward: Required<NamedReward<P>>,
  samples: Tensor,
  prompts: readonly P[],
  policy: RewardPolicy,
): Promise<ArrayLike<number>> {
  for (let attempt = 0; ; attempt++) {
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = Promise.resolve().then(() => reward.fn(samples, prompts));
      if (policy.timeoutMs <= 0) return await answer;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new RewardError(reward.name, `gave no answer within ${policy.timeoutMs} ms`)),
          policy.timeoutMs,
        );
      });
      return await Promise.race([answer, timeout]);
    } catch (error) {
      if (attempt >= policy.retries) {
        if (error instanceof RewardError) throw error;
        const reason = error instanceof Error ? error.message : String(error);
        throw new RewardError(reward.name, `failed: ${reason}`, { cause: error });
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Calls every reward on a batch and checks each answer: the right count (else RewardError), all finite (else
 * NumericError). A reward that throws, rejects or times out is a RewardError naming it, with the original as `cause`.
 */
export async function score<P extends Prompt>(
  rewards: ResolvedRewards<P>,
  samples: Tensor,
  prompts: readonly P[],
  policy: RewardPolicy = { timeoutMs: 0, retries: 0 },
): Promise<Scores> {
  const n = prompts.length;
  const total = new Float64Array(n);
  const parts: Record<string, Float64Array> = {};
  const answers = await Promise.all(rewards.map((r) => callReward(r, samples, prompts, policy)));
  answers.forEach((answer, k) => {
    const { name, weight } = rewards[k] as Required<NamedReward<P>>;
    if (answer === null || typeof answer !== 'object' || typeof answer.length !== 'number') {
      throw new RewardError(name, 'must return an array of numbers');
    }
    if (answer.length !== n) throw new RewardError(name, `returned ${answer.length} scores for ${n} samples`);
    const values = Float64Array.from(answer);
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(values[i])) {
        throw new NumericError(`reward '${name}' returned a non-finite score (${values[i]}) for sample ${i}`);
      }
      total[i] = (total[i] as number) + weight * (values[i] as number);
    }
    parts[name] = values;
  });
  return { total, parts };
}

/** Checks a prompt list against a network's condition slots and vocabulary. */
export function checkPrompts<P extends Prompt>(what: string, prompts: unknown, slots: number, vocab: number): P[] {
  if (!Array.isArray(prompts) || prompts.length === 0) throw new TypeError(`${what} must be a non-empty array`);
  prompts.forEach((p, i) => {
    const tokens = (p as Prompt | null)?.tokens;
    if (!Array.isArray(tokens) || tokens.length !== slots) {
      throw new TypeError(`${what}[${i}].tokens must be an array of ${slots} condition tokens`);
    }
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) {
        throw new RangeError(`${what}[${i}].tokens must be integers in [0, ${vocab}), got ${t}`);
      }
    }
  });
  return prompts as P[];
}

/**
 * A prompt as text, to compare the prompts of the ranks of a distributed run: its JSON (the tokens, the text and
 * whatever else a reward reads, BigInts as text), or its tokens and text alone where it has no JSON (a cycle).
 */
export function promptText(prompt: Prompt): string {
  try {
    return JSON.stringify(prompt, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  } catch {
    return JSON.stringify({ tokens: prompt.tokens, text: prompt.text });
  }
}

/**
 * The prompts of one epoch: `groups` distinct prompts (with repeats only when there are fewer prompts than groups),
 * chosen by a Philox stream of (seed, epoch), each repeated `groupSize` times. Returns the prompt of every sample
 * and its group index.
 */
export function drawGroups<P extends Prompt>(
  prompts: readonly P[],
  groups: number,
  groupSize: number,
  seed: number,
  epoch: number,
  stream: number,
): { prompts: P[]; groupIds: Int32Array } {
  const u = new Float32Array(prompts.length);
  native().randomFill(u, seed, stream, epoch * prompts.length, 'uniform');
  const order = Array.from(prompts.keys()).sort((a, b) => (u[a] as number) - (u[b] as number) || a - b);
  const chosen: P[] = [];
  const groupIds = new Int32Array(groups * groupSize);
  for (let g = 0; g < groups; g++) {
    const prompt = prompts[order[g % order.length] as number] as P;
    for (let k = 0; k < groupSize; k++) {
      chosen.push(prompt);
      groupIds[g * groupSize + k] = g;
    }
  }
  return { prompts: chosen, groupIds };
}

/** Condition tokens (n, L) of a list of prompts. */
export function promptTokens(prompts: readonly Prompt[], slots: number): Int32Array {
  const tokens = new Int32Array(prompts.length * slots);
  for (const [i, p] of prompts.entries()) tokens.set(p.tokens, i * slots);
  return tokens;
}

/** Counts of values in [0, 1] over `bins` equal bins (the last one closed). */
export function histogram(values: ArrayLike<number>, bins = 10): number[] {
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const bin = Math.min(bins - 1, Math.max(0, Math.floor((values[i] as number) * bins)));
    counts[bin] = (counts[bin] as number) + 1;
  }
  return counts;
}

/** Mean and population standard deviation. */
export function meanStd(values: ArrayLike<number>): { mean: number; std: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  const mean = sum / Math.max(1, values.length);
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += ((values[i] as number) - mean) ** 2;
  return { mean, std: Math.sqrt(sq / Math.max(1, values.length)) };
}
