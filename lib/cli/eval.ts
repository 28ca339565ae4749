// `diffusion-nft eval`: GenEval-style strict scores of a shapes model.
import type { Command } from 'commander';
import { progressReporter } from '../jobs/progress.js';
import { EVAL_SCHEMA, evaluateShapes } from '../jobs/shapes/evaluate.js';
import { guidanceLabel } from '../jobs/shapes/guidance.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import * as shapes from '../tasks/shapes/index.js';
import { CFG_HELP, cfgIntervalOption, flag, integer, number } from './flags.js';
import { printEvaluation } from './job.js';

/** Registers `eval`. */
export function addEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('GenEval-style strict scores of a shapes model')
    .requiredOption('--checkpoint <path>', 'the model')
    .option('--cfg <scale>', CFG_HELP, number, EVAL_SCHEMA.cfgScale.default)
    .addOption(cfgIntervalOption())
    .option('--samples-per-prompt <n>', 'samples of each prompt', integer(1), EVAL_SCHEMA.samplesPerPrompt.default)
    .addOption(
      flag('--prompts <set>', 'prompt set', { type: 'enum', values: ['test', 'train', 'all'], default: 'test' }),
    )
    .option('--steps <n>', 'Euler steps', integer(1), EVAL_SCHEMA.steps.default)
    .option('--json', 'print the scores as JSON')
    .action(
      async (o: {
        checkpoint: string;
        cfg: number;
        cfgInterval: [number, number];
        samplesPerPrompt: number;
        prompts: string;
        steps: number;
        json?: boolean;
      }) => {
        const { net } = await loadCheckpoint(o.checkpoint);
        const sets = { test: shapes.TEST_PROMPTS, train: shapes.TRAIN_PROMPTS, all: shapes.ALL_PROMPTS };
        const guidance = { cfgScale: o.cfg, cfgInterval: o.cfgInterval };
        const e = await evaluateShapes(
          net,
          {
            ...guidance,
            prompts: sets[o.prompts as keyof typeof sets],
            samplesPerPrompt: o.samplesPerPrompt,
            steps: o.steps,
          },
          progressReporter('evaluating', 'samples'),
        );
        if (o.json) {
          const { checkpoint, prompts, cfg, cfgInterval, samplesPerPrompt, steps } = o;
          const settings = { checkpoint, prompts, cfg, cfgInterval, samplesPerPrompt, steps };
          const scores = { strict: e.overall, byCategory: e.byCategory, reward: e.reward, samples: e.samples };
          console.log(JSON.stringify({ ...settings, ...scores }, null, 2));
        } else printEvaluation(`${o.checkpoint}, ${o.prompts} prompts, ${guidanceLabel(guidance)}`, e);
      },
    );
}
