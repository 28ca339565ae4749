// `diffusion-nft demo`: the main job, DiffusionNFT on the shapes benchmark from the shipped base model.
import { join } from 'node:path';
import type { Command } from 'commander';
import { backendInfo } from '../index.js';
import { runShapesDemo, SHAPES_BASE } from '../jobs/demo-shapes.js';
import { type DashboardFlag, dashboardOption, withDashboard } from './dashboard.js';
import { integer, microBatchOption, positive } from './flags.js';
import { interruptible } from './job.js';

interface DemoFlags extends DashboardFlag {
  minutes: number;
  base?: string;
  samplesPerPrompt: number;
  microBatch: number;
  out: string;
}

/** Registers `demo`. */
export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'the main job: DiffusionNFT on the shapes benchmark from the shipped base model, with curves, grids and a summary',
    )
    .option('--minutes <n>', 'minutes of DiffusionNFT', positive, 6)
    .option('--base <checkpoint>', 'base model (default: the one shipped in the package)')
    .option('--samples-per-prompt <n>', 'samples of each test prompt per evaluation', integer(1), 8)
    .addOption(microBatchOption())
    .option('--out <dir>', 'output folder', 'diffusion-nft-demo')
    .addOption(dashboardOption())
    .action(async (o: DemoFlags) => {
      const info = backendInfo();
      console.log(`backend: cpu (${info.threads} threads)${info.cuda ? `, CUDA device ${info.device}` : ''}`);
      const signal = interruptible(
        'ending DiffusionNFT after the current epoch, then scoring it and writing the results',
      );
      const table = await withDashboard(o.dashboard, [join(o.out, 'run')], () =>
        runShapesDemo({ ...o, base: o.base ?? SHAPES_BASE, signal, log: (line) => console.log(line) }),
      );
      console.log(
        `\n${table}\n\nwrote ${o.out}/: summary.md, samples-before.png, samples-before-cfg.png, samples-after.png, run/*.png`,
      );
    });
}
