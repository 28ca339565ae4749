// `diffusion-nft pretrain`: a base model pre-trained on the shapes world or on a folder of images. Its flags and its
// --config file take the pre-training job's table (lib/jobs/pretrain.ts) and the command's own options.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { PRETRAIN_SCHEMA, pretrainImageFolderJob, pretrainShapes } from '../jobs/pretrain.js';
import { progressReporter } from '../jobs/progress.js';
import { EVAL_SCHEMA, evaluateShapes } from '../jobs/shapes/evaluate.js';
import { guidanceLabel, SHAPES_GUIDANCE } from '../jobs/shapes/guidance.js';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { VelocityNet } from '../model/net.js';
import type { Resolved } from '../options/schema.js';
import { type ConfigFlag, flag, microBatchOption, withConfig } from './flags.js';
import { interruptible, printEvaluation, reports } from './job.js';

/** The options of `pretrain`, for its flags and its --config file. */
const PRETRAIN_OPTIONS = {
  preset: { type: 'enum', values: ['D', 'M'], default: 'D' },
  ...PRETRAIN_SCHEMA,
  from: { type: 'string' },
  images: { type: 'string' },
  withOptimizer: { type: 'boolean' },
  // The evaluation of the base that ends a shapes pre-training: samples of each test prompt.
  samplesPerPrompt: EVAL_SCHEMA.samplesPerPrompt,
  out: { type: 'string', default: 'shapes-base.safetensors' },
} as const;

/** Registers `pretrain`. */
export function addPretrainCommand(program: Command): void {
  program
    .command('pretrain')
    .description('pre-train a base model on the shapes world (rendered caption–image pairs, condition dropout)')
    .addOption(flag('--preset <name>', 'network preset: D (DiT) or M (MLP)', PRETRAIN_OPTIONS.preset))
    .addOption(flag('--minutes <n>', 'stop after this many minutes', PRETRAIN_OPTIONS.minutes))
    .addOption(flag('--steps <n>', 'stop after this many optimiser steps', PRETRAIN_OPTIONS.steps))
    .addOption(flag('--batch <n>', 'samples per step', PRETRAIN_OPTIONS.batch))
    .addOption(microBatchOption(PRETRAIN_OPTIONS.microBatch))
    .addOption(flag('--lr <x>', 'peak learning rate', PRETRAIN_OPTIONS.lr))
    .addOption(flag('--cond-dropout <p>', 'probability of the null condition', PRETRAIN_OPTIONS.condDropout))
    .addOption(
      flag(
        '--schedule <name>',
        'learning rate after the warm-up (cosine: down to lr/100 at the last --steps)',
        PRETRAIN_OPTIONS.schedule,
      ),
    )
    .addOption(
      flag(
        '--ema <decay>',
        'write an exponential moving average of the weights (e.g. 0.999; 0 = none)',
        PRETRAIN_OPTIONS.ema,
      ),
    )
    .addOption(flag('--seed <n>', 'random seed', PRETRAIN_OPTIONS.seed))
    .option('--from <checkpoint>', 'continue from a checkpoint')
    .option('--images <dir>', 'pre-train on the PNG images of DIR/<class>/ instead of the shapes world (docs/data.md)')
    .addOption(
      flag(
        '--samples-per-prompt <n>',
        'samples of each test prompt in the closing evaluation of the base',
        PRETRAIN_OPTIONS.samplesPerPrompt,
      ),
    )
    .option('--with-optimizer', 'also save the AdamW state (3× the size), for an exact --from continuation')
    .addOption(flag('--out <path>', 'checkpoint to write', PRETRAIN_OPTIONS.out))
    .option('--config <file>', 'JSON file with any of these options')
    .action(async (given: Resolved<typeof PRETRAIN_OPTIONS> & ConfigFlag, command: Command) => {
      const o = await withConfig(given, command, PRETRAIN_OPTIONS);
      if (o.minutes === undefined && o.steps === undefined) throw new InvalidArgumentError('give --minutes or --steps');
      if (o.schedule === 'cosine' && o.steps === undefined)
        throw new InvalidArgumentError('--schedule cosine needs --steps');
      const lead = reports('distributed', undefined);
      const log = lead ? (line: string) => console.log(line) : () => {};
      const net = o.from
        ? (await loadCheckpoint(o.from)).net
        : VelocityNet.create({ preset: o.preset }, { seed: o.seed });
      log(`pretrain: ${net.paramCount} parameters (${net.config.arch}), batch ${o.batch}`);
      const signal = interruptible();
      if (o.images !== undefined) {
        const command = `pretrain ${JSON.stringify(o)}`;
        await pretrainImageFolderJob(net, o.images, { ...o, signal, command, log });
        return;
      }
      const result = await pretrainShapes(net, { ...o, signal });
      // Every rank holds the same weights: rank 0 alone scores and writes them.
      if (!lead) return;
      const { samplesPerPrompt } = o;
      const plain = await evaluateShapes(
        net,
        { samplesPerPrompt },
        progressReporter('evaluating the base, no CFG', 'samples'),
      );
      const guidance = guidanceLabel(SHAPES_GUIDANCE);
      const guided = await evaluateShapes(
        net,
        { ...SHAPES_GUIDANCE, samplesPerPrompt },
        progressReporter(`evaluating the base, ${guidance}`, 'samples'),
      );
      printEvaluation('base, no CFG', plain);
      printEvaluation(`base, ${guidance}`, guided);
      await mkdir(dirname(o.out), { recursive: true });
      await saveCheckpoint(o.out, net, {
        optimizer: o.withOptimizer === true,
        metadata: {
          'shapes.command': `pretrain ${JSON.stringify(o)}`,
          'shapes.seconds': result.seconds.toFixed(0),
          'shapes.strict': plain.overall.toFixed(4),
          'shapes.strictCfg': `${guided.overall.toFixed(4)} (${guidanceLabel(SHAPES_GUIDANCE)})`,
          'shapes.evaluation': `test prompts, ${samplesPerPrompt} samples each, 40-step Euler, seed 12345`,
        },
      });
      console.log(
        `wrote ${o.out}: ${result.steps} step${result.steps === 1 ? '' : 's'} in ${result.seconds.toFixed(0)} s, loss ${result.loss.toFixed(4)}`,
      );
    });
}
