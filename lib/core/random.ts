// The package's random numbers: the Philox4x32-10 generator of the native core and every stream of it
// (docs/algorithms.md §5.1). A draw is keyed by (seed, stream, element), so each purpose has a stream of its own
// and draws of one kind never shift those of another. Streams 1–9 are the native core's (native/core/math/philox.h,
// kept equal by test/streams.test.ts); 16 and above are free for user draws.
import { native } from './native.js';

/** The Philox4x32-10 block function (counter: 4 words, key: 2 words), exposed for verification. */
export function philox4x32(counter: readonly number[], key: readonly number[]): number[] {
  if (counter.length !== 4 || key.length !== 2) throw new RangeError('counter must have 4 words and key 2');
  return Array.from(native().philox4x32(Uint32Array.from(counter), Uint32Array.from(key)));
}

/** Parameter initialisation. */
export const INIT_STREAM = 1;
/** The interpolation noise ε of a training step. */
export const NOISE_STREAM = 2;
/** Training times t. */
export const TIME_STREAM = 3;
/** Condition dropout of pre-training. */
export const DROPOUT_STREAM = 4;
/** Initial noise of rollouts: sample i of a seed uses elements [i·D, (i + 1)·D). */
export const SAMPLE_STREAM = 5;
/** The online trainers' choice of prompts for each epoch. */
export const PROMPT_STREAM = 6;
/** The SDE noise: step n of sample i uses elements n·2^40 + [i·D, (i + 1)·D). */
export const SDE_STREAM = 7;
/** The A matrices of fresh LoRA adapters (docs/lora.md), element = position in the adapter buffer. */
export const LORA_STREAM = 8;
/** Flow-GRPO-Fast: the start of each prompt group's SDE window, element = the group's index in the run. */
export const WINDOW_STREAM = 9;
/** First stream free for user draws (Tensor.randn, Tensor.rand). */
export const USER_STREAM = 16;
/** toy2d: the mode of each sample, and its point around the mode centre. */
export const TOY2D_MODE_STREAM = 100;
export const TOY2D_POINT_STREAM = 101;
/** shapes: the random placements of a scene, and the choice of a batch's prompts. */
export const SHAPES_SCENE_STREAM = 110;
export const SHAPES_PROMPT_STREAM = 111;
/** Image folders: the order of the images in each epoch. */
export const IMAGE_FOLDER_STREAM = 120;
