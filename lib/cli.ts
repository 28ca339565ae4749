#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { addDashboardCommand, dashboardOption, withDashboard } from './dashboard/command.js';
import { type DemoOptions, runToy2dDemo } from './demo.js';
import { writeFileAtomic } from './files.js';
import { backendInfo } from './index.js';
import { runShapesDemo, SHAPES_BASE } from './jobs/demo-shapes.js';
import {
  evaluateShapes,
  findPrompt,
  guidanceLabel,
  pretrainShapes,
  SHAPES_GUIDANCE,
  sampleGrid,
  trainShapes,
} from './jobs/shapes.js';
import { type NativeBackendInfo, packageRoot } from './native.js';
import { VelocityNet } from './net.js';
import * as shapes from './tasks/shapes/index.js';

function integer(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

function positive(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function number(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

// "lo,hi" with 0 ≤ lo ≤ hi ≤ 1: the times at which guidance applies.
function interval(value: string): [number, number] {
  const parts = value.split(',').map((part) => Number(part.trim()));
  const [lo, hi] = parts;
  if (parts.length !== 2 || !(lo !== undefined && hi !== undefined && lo >= 0 && lo <= hi && hi <= 1)) {
    throw new InvalidArgumentError('expected lo,hi with 0 <= lo <= hi <= 1');
  }
  return [lo, hi];
}

const CFG_HELP = 'classifier-free guidance scale';

function cfgIntervalOption(): Option {
  const help = `guidance only at t in [lo, hi] (1 = noise; the benchmark's "with CFG" is ${guidanceLabel(SHAPES_GUIDANCE)})`;
  return new Option('--cfg-interval <lo,hi>', help).argParser(interval).default([0, 1], '0,1');
}

/** Options from a JSON config file, under the command-line flags given explicitly. */
function withConfig<T extends object>(opts: T & { config?: string }, command: Command): T {
  if (opts.config === undefined) return opts;
  let file: Record<string, unknown>;
  try {
    file = JSON.parse(readFileSync(opts.config, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new InvalidArgumentError(`cannot read config ${opts.config}: ${(error as Error).message}`);
  }
  const merged: Record<string, unknown> = { ...opts };
  const known = new Set(command.options.map((option) => option.attributeName()));
  for (const [key, value] of Object.entries(file)) {
    if (!known.has(key) && key !== 'trainer') {
      throw new InvalidArgumentError(`config ${opts.config}: unknown option '${key}'`);
    }
    if (command.getOptionValueSource(key) !== 'cli') merged[key] = value;
  }
  return merged as T;
}

/** An AbortSignal that Ctrl-C (SIGINT) trips once, saying what happens next; a second Ctrl-C exits at once. */
function interruptible(then = 'finishing the current step and saving a checkpoint'): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error(`\ninterrupted: ${then} (Ctrl-C again to quit now)`);
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return controller.signal;
}

function printEvaluation(label: string, e: shapes.ShapesEvaluation): void {
  const cats = Object.entries(e.byCategory)
    .map(([k, v]) => `${k} ${(v as number).toFixed(2)}`)
    .join(', ');
  console.log(
    `${label}: strict ${e.overall.toFixed(3)} (${cats}); reward ${e.reward.toFixed(3)}; ${e.samples} samples`,
  );
}

interface DemoFlags {
  minutes: number;
  base?: string;
  samplesPerPrompt: number;
  out: string;
  dashboard?: true | number;
}

/** The backends in a few lines for people; `info --json` gives the same fields. */
function describeBackends(info: NativeBackendInfo): string {
  const lines = [`CPU: ${info.threads} threads`];
  if (!info.compiledWithCuda) lines.push(`CUDA: ${info.cudaUnavailableReason ?? 'not built in'}`);
  else {
    lines.push(
      info.cuda
        ? `CUDA: ${info.deviceCount} device(s), ${info.device}`
        : `CUDA: unavailable, ${info.cudaUnavailableReason}`,
    );
    const found =
      info.driverVersion ?? (info.driverCudaVersion ? `one supporting CUDA ${info.driverCudaVersion}` : 'none');
    lines.push(
      `  runtime CUDA ${info.cudaRuntime}, needs NVIDIA driver r${info.requiredDriver} or newer; driver found: ${found}`,
    );
  }
  return lines.join('\n');
}

const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };

const program = new Command()
  .name('diffusion-nft')
  .description('Online RL post-training of flow-matching generators (DiffusionNFT, FlowGRPO)')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError();

program
  .command('demo')
  .description(
    'the main job: DiffusionNFT on the shapes benchmark from the shipped base model, with curves, grids and a summary',
  )
  .option('--minutes <n>', 'minutes of DiffusionNFT', positive, 6)
  .option('--base <checkpoint>', 'base model (default: the one shipped in the package)')
  .option('--samples-per-prompt <n>', 'samples of each test prompt per evaluation', integer(1), 8)
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

program
  .command('toy2d')
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
  .command('pretrain')
  .description('pre-train a base model on the shapes world (rendered caption–image pairs, condition dropout)')
  .addOption(new Option('--preset <name>', 'network preset: D (DiT) or M (MLP)').choices(['D', 'M']).default('D'))
  .option('--minutes <n>', 'stop after this many minutes', positive)
  .option('--steps <n>', 'stop after this many optimiser steps', integer(1))
  .option('--batch <n>', 'samples per step', integer(1), 128)
  .option('--lr <x>', 'peak learning rate', positive, 1e-3)
  .option('--cond-dropout <p>', 'probability of the null condition', number, 0.1)
  .addOption(
    new Option('--schedule <name>', 'learning rate after the warm-up (cosine: down to lr/100 at the last --steps)')
      .choices(['constant', 'cosine'])
      .default('constant'),
  )
  .option('--ema <decay>', 'write an exponential moving average of the weights (e.g. 0.999; 0 = none)', number, 0)
  .option('--seed <n>', 'random seed', integer(0), 1)
  .option('--from <checkpoint>', 'continue from a checkpoint')
  .option('--with-optimizer', 'also save the AdamW state (3× the size), for an exact --from continuation')
  .option('--out <path>', 'checkpoint to write', 'shapes-base.safetensors')
  .option('--config <file>', 'JSON file with any of these options')
  .action(async (given, command: Command) => {
    const o = withConfig(given as Record<string, unknown> & { config?: string }, command) as {
      preset: 'D' | 'M';
      minutes?: number;
      steps?: number;
      batch: number;
      lr: number;
      condDropout: number;
      schedule: 'constant' | 'cosine';
      ema: number;
      seed: number;
      from?: string;
      withOptimizer?: boolean;
      out: string;
    };
    if (o.minutes === undefined && o.steps === undefined) throw new InvalidArgumentError('give --minutes or --steps');
    if (o.schedule === 'cosine' && o.steps === undefined)
      throw new InvalidArgumentError('--schedule cosine needs --steps');
    if (!(o.ema >= 0 && o.ema < 1)) throw new InvalidArgumentError('--ema must be in [0, 1)');
    const net = o.from
      ? (await loadCheckpoint(o.from)).net
      : VelocityNet.create({ preset: o.preset }, { seed: o.seed });
    console.log(`pretrain: ${net.paramCount} parameters (${net.config.arch}), batch ${o.batch}`);
    const signal = interruptible();
    const result = await pretrainShapes(net, { ...o, signal });
    const plain = await evaluateShapes(net);
    const guided = await evaluateShapes(net, SHAPES_GUIDANCE);
    printEvaluation('base, no CFG', plain);
    printEvaluation(`base, ${guidanceLabel(SHAPES_GUIDANCE)}`, guided);
    await mkdir(dirname(o.out), { recursive: true });
    await saveCheckpoint(o.out, net, {
      optimizer: o.withOptimizer === true,
      metadata: {
        'shapes.command': `pretrain ${JSON.stringify(o)}`,
        'shapes.seconds': result.seconds.toFixed(0),
        'shapes.strict': plain.overall.toFixed(4),
        'shapes.strictCfg': `${guided.overall.toFixed(4)} (${guidanceLabel(SHAPES_GUIDANCE)})`,
        'shapes.evaluation': 'test prompts, 8 samples each, 40-step Euler, seed 12345',
      },
    });
    console.log(
      `wrote ${o.out}: ${result.steps} steps in ${result.seconds.toFixed(0)} s, loss ${result.loss.toFixed(4)}`,
    );
  });

program
  .command('train')
  .description('post-train a shapes base model with DiffusionNFT or FlowGRPO')
  .addOption(new Option('--method <name>', 'RL method').choices(['nft', 'flowgrpo']).default('nft'))
  .requiredOption('--base <checkpoint>', 'the base model (or a run to resume with --resume)')
  .option('--resume', 'continue the trainer state saved in --base')
  .option('--epochs <n>', 'stop after this many epochs', integer(1))
  .option('--minutes <n>', 'stop after this many minutes of training', positive)
  .option('--eval-every <n>', 'evaluate on the test prompts every n epochs', integer(1), 5)
  .option('--out <dir>', 'output folder', 'shapes-run')
  .option('--config <file>', 'JSON file with these options and a "trainer" object of trainer options')
  .addOption(dashboardOption())
  .option('--json', 'end with a JSON summary on stdout (the progress log goes to stderr)')
  .action(async (given, command: Command) => {
    const o = withConfig(given as Record<string, unknown> & { config?: string }, command) as {
      method: 'nft' | 'flowgrpo';
      base: string;
      resume?: boolean;
      epochs?: number;
      minutes?: number;
      evalEvery: number;
      out: string;
      trainer?: Record<string, unknown>;
      dashboard?: true | number;
      json?: boolean;
    };
    if (o.epochs === undefined && o.minutes === undefined) throw new InvalidArgumentError('give --epochs or --minutes');
    const started = performance.now();
    const log = o.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
    const { dashboard, json, ...job } = o;
    const { points } = await withDashboard(dashboard, [o.out], () =>
      trainShapes({ ...job, signal: interruptible(), log }),
    );
    if (json) {
      const last = points.at(-1);
      const summary = {
        method: o.method,
        out: o.out,
        epochs: last?.epoch,
        trainingSeconds: last?.seconds,
        wallSeconds: (performance.now() - started) / 1000,
        strict: last?.strict,
        testReward: last?.testReward,
        reward: last?.reward,
        checkpoint: join(o.out, 'checkpoint.safetensors'),
      };
      console.log(JSON.stringify(summary, null, 2));
    }
  });

program
  .command('eval')
  .description('GenEval-style strict scores of a shapes model')
  .requiredOption('--checkpoint <path>', 'the model')
  .option('--cfg <scale>', CFG_HELP, number, 1)
  .addOption(cfgIntervalOption())
  .option('--samples-per-prompt <n>', 'samples of each prompt', integer(1), 8)
  .addOption(new Option('--prompts <set>', 'prompt set').choices(['test', 'train', 'all']).default('test'))
  .option('--steps <n>', 'Euler steps', integer(1), 40)
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
      const e = await evaluateShapes(net, {
        ...guidance,
        prompts: sets[o.prompts as keyof typeof sets],
        samplesPerPrompt: o.samplesPerPrompt,
        steps: o.steps,
      });
      if (o.json) {
        const { checkpoint, prompts, cfg, cfgInterval, samplesPerPrompt, steps } = o;
        const settings = { checkpoint, prompts, cfg, cfgInterval, samplesPerPrompt, steps };
        const scores = { strict: e.overall, byCategory: e.byCategory, reward: e.reward, samples: e.samples };
        console.log(JSON.stringify({ ...settings, ...scores }, null, 2));
      } else printEvaluation(`${o.checkpoint}, ${o.prompts} prompts, ${guidanceLabel(guidance)}`, e);
    },
  );

program
  .command('sample')
  .description('write a PNG grid of samples: a row for each prompt')
  .requiredOption('--checkpoint <path>', 'the model')
  .requiredOption('--prompt <text...>', "shapes prompts, e.g. 'a red circle left of a blue square' 'two triangles'")
  .option('--n <n>', 'samples of each prompt', integer(1), 8)
  .option('--cfg <scale>', CFG_HELP, number, 1)
  .addOption(cfgIntervalOption())
  .option('--steps <n>', 'Euler steps', integer(1), 40)
  .option('--seed <n>', 'noise seed', integer(0), 7)
  .option('--out <path>', 'PNG to write', 'samples.png')
  .action(
    async (o: {
      checkpoint: string;
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
      const png = await sampleGrid(net, prompts, {
        cfgScale: o.cfg,
        cfgInterval: o.cfgInterval,
        perPrompt: o.n,
        steps: o.steps,
        seed: o.seed,
      });
      await writeFileAtomic(o.out, png);
      console.log(`wrote ${o.out}: ${o.n} samples each of ${prompts.map((p) => `'${p.text}'`).join(', ')}`);
    },
  );

addDashboardCommand(program);

program
  .command('info')
  .description('print the backends this build and machine offer, and what CUDA needs')
  .option('--json', 'print them as JSON')
  .action((o: { json?: boolean }) => {
    const info = backendInfo();
    console.log(o.json ? JSON.stringify(info, null, 2) : describeBackends(info));
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
