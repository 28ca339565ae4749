// `diffusion-nft toy2d`: pre-training and DiffusionNFT on the conditional 2-D Gaussian mixture.
import type { Command } from 'commander';
import { backendInfo } from '../index.js';
import { type DemoOptions, runToy2dDemo } from '../jobs/demo-toy2d.js';
import { SOLVER_NAMES } from '../sampling/solvers.js';
import { flag, integer } from './flags.js';

/** Registers `toy2d`. */
export function addToy2dCommand(program: Command): void {
  program
    .command('toy2d')
    .description(
      'pre-train the small velocity network on the conditional 2-D 8-Gaussian mixture, then post-train it with DiffusionNFT',
    )
    .option('--steps <n>', 'optimiser steps', integer(1), 600)
    .option('--batch <n>', 'samples per step', integer(1), 256)
    .option('--seed <n>', 'random seed', integer(0), 0)
    .option('--sample-steps <n>', 'solver steps when sampling', integer(1), 10)
    .addOption(
      flag('--solver <name>', 'solver of the samples and of the DiffusionNFT rollouts', {
        type: 'enum',
        values: SOLVER_NAMES,
        default: 'dpm2',
      }),
    )
    .option('--rl-epochs <n>', 'DiffusionNFT epochs after pre-training', integer(0), 30)
    .action(async (opts: Omit<DemoOptions, 'log'>) => {
      const info = backendInfo();
      console.log(`backend: cpu (${info.threads} threads)${info.cuda ? `, CUDA device ${info.device}` : ''}`);
      await runToy2dDemo({ ...opts, log: (line) => console.log(line) });
    });
}
