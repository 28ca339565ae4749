// `diffusion-nft sample`: a PNG grid of samples, a row for each prompt.
import type { Command } from 'commander';
import { writeFileAtomic } from '../core/files.js';
import { progressReporter } from '../jobs/progress.js';
import { GRID_SCHEMA, sampleGrid } from '../jobs/shapes/evaluate.js';
import { findPrompt } from '../jobs/shapes/prompts.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadAdapter } from '../model/lora.js';
import { CFG_HELP, cfgIntervalOption, integer, number } from './flags.js';

/** Registers `sample`. */
export function addSampleCommand(program: Command): void {
  program
    .command('sample')
    .description('write a PNG grid of samples: a row for each prompt')
    .requiredOption('--checkpoint <path>', 'the model')
    .option('--adapter <path>', "apply this LoRA adapter (a LoRA run's adapter.safetensors, or a PEFT adapter folder)")
    .requiredOption('--prompt <text...>', "shapes prompts, e.g. 'a circle left of a square' 'two triangles'")
    .option('--n <n>', 'samples of each prompt', integer(1), GRID_SCHEMA.perPrompt.default)
    .option('--cfg <scale>', CFG_HELP, number, GRID_SCHEMA.cfgScale.default)
    .addOption(cfgIntervalOption())
    .option('--steps <n>', 'Euler steps', integer(1), GRID_SCHEMA.steps.default)
    .option('--seed <n>', 'noise seed', integer(0), GRID_SCHEMA.seed.default)
    .option('--out <path>', 'PNG to write', 'samples.png')
    .action(
      async (o: {
        checkpoint: string;
        adapter?: string;
        prompt: string[];
        n: number;
        cfg: number;
        cfgInterval: [number, number];
        steps: number;
        seed: number;
        out: string;
      }) => {
        const prompts = o.prompt.map(findPrompt);
        const { net } = await loadCheckpoint(o.checkpoint);
        if (o.adapter !== undefined) await loadAdapter(o.adapter, net);
        const png = await sampleGrid(
          net,
          prompts,
          { cfgScale: o.cfg, cfgInterval: o.cfgInterval, perPrompt: o.n, steps: o.steps, seed: o.seed },
          progressReporter('sampling', 'samples'),
        );
        await writeFileAtomic(o.out, png);
        console.log(`wrote ${o.out}: ${o.n} samples each of ${prompts.map((p) => `'${p.text}'`).join(', ')}`);
      },
    );
}
