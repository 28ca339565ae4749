#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { type DemoOptions, runToy2dDemo } from './demo.js';
import { backendInfo } from './index.js';

function integer(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

const program = new Command()
  .name('diffusion-nft')
  .description('Online RL post-training of flow-matching generators (DiffusionNFT, FlowGRPO)');

program
  .command('demo')
  .description(
    'pre-train the small velocity network on the conditional 2-D 8-Gaussian mixture, then post-train it with DiffusionNFT',
  )
  .option('--steps <n>', 'optimiser steps', integer(1), 600)
  .option('--batch <n>', 'samples per step', integer(1), 256)
  .option('--seed <n>', 'random seed', integer(0), 0)
  .option('--sample-steps <n>', 'solver steps when sampling', integer(1), 10)
  .addOption(new Option('--solver <name>', 'sampling solver').choices(['euler', 'heun', 'dpm2']).default('dpm2'))
  .option('--rl-epochs <n>', 'DiffusionNFT epochs after pre-training', integer(0), 30)
  .action(async (opts: Omit<DemoOptions, 'log'>) => {
    const info = backendInfo();
    console.log(`backend: cpu (${info.threads} threads)${info.cuda ? `, CUDA device ${info.device}` : ''}`);
    await runToy2dDemo({ ...opts, log: (line) => console.log(line) });
  });

program
  .command('info')
  .description('print the backends this build and machine offer')
  .action(() => console.log(JSON.stringify(backendInfo(), null, 2)));

program.parseAsync().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
