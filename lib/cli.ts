#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { addDashboardCommand, dashboardOption, withDashboard } from './cli/dashboard.js';
import { flag, parseNumber, withConfig } from './cli/flags.js';
import { writeFileAtomic } from './core/files.js';
import { type NativeBackendInfo, native, packageRoot } from './core/native.js';
import { backendInfo } from './index.js';
import { runShapesDemo, SHAPES_BASE } from './jobs/demo-shapes.js';
import { type DemoOptions, runToy2dDemo } from './jobs/demo-toy2d.js';
import { pretrainImageFolderJob, pretrainShapes } from './jobs/pretrain.js';
import { evaluateShapes, sampleGrid } from './jobs/shapes/evaluate.js';
import { guidanceLabel, SHAPES_GUIDANCE } from './jobs/shapes/guidance.js';
import { findPrompt } from './jobs/shapes/prompts.js';
import { trainShapes } from './jobs/shapes/train.js';
import { loadCheckpoint, saveCheckpoint } from './model/checkpoint.js';
import { loadAdapter } from './model/lora.js';
import { VelocityNet } from './model/net.js';
import { FLOW_MATCHING_SCHEMA } from './options/flow-matching.js';
import { LORA_DEFAULT_TARGETS, LORA_SCHEMA } from './options/lora.js';
import { OPTIMIZER_SCHEMA } from './options/optimizer.js';
import { objectOption, type Rule, withDefaults } from './options/schema.js';
import * as shapes from './tasks/shapes/index.js';
import { currentWorld, openWorld } from './training/distributed.js';

const integer = (min: number) => parseNumber({ type: 'int', min, max: Number.MAX_SAFE_INTEGER });
const positive = parseNumber({ type: 'number', min: Number.MIN_VALUE, max: Number.MAX_VALUE });
const number = parseNumber({ type: 'number', min: -Number.MAX_VALUE, max: Number.MAX_VALUE });

/** How long a run trains. */
const MINUTES = { type: 'number', min: 1e-6, max: 1e7 } as const satisfies Rule;

/** The options of `pretrain`, for its flags and its --config file. */
const PRETRAIN_OPTIONS = {
  preset: { type: 'enum', values: ['D', 'M'], default: 'D' },
  minutes: MINUTES,
  steps: { type: 'int', min: 1, max: 1e12 },
  batch: { type: 'int', min: 1, max: 1 << 20, default: 128 },
  ...withDefaults(
    { lr: OPTIMIZER_SCHEMA.lr, condDropout: FLOW_MATCHING_SCHEMA.condDropout },
    { lr: 1e-3, condDropout: 0.1 },
  ),
  schedule: { type: 'enum', values: ['constant', 'cosine'], default: 'constant' },
  ema: { type: 'number', min: 0, max: 0.999999, default: 0 },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 1 },
  from: { type: 'string' },
  images: { type: 'string' },
  withOptimizer: { type: 'boolean' },
  out: { type: 'string', default: 'shapes-base.safetensors' },
} as const;

/** The options of `train`, for its flags and its --config file (`trainer` holds the trainer's own options). */
const TRAIN_OPTIONS = {
  method: { type: 'enum', values: ['nft', 'flowgrpo'], default: 'nft' },
  base: { type: 'string' },
  resume: { type: 'boolean' },
  epochs: { type: 'int', min: 1, max: 1e9 },
  minutes: MINUTES,
  evalEvery: { type: 'int', min: 1, max: 1e9, default: 5 },
  out: { type: 'string', default: 'shapes-run' },
  trainer: { type: 'value' },
  // LoRA (docs/lora.md): any of these trains adapters, the others taking LORA_SCHEMA's defaults.
  loraRank: { ...LORA_SCHEMA.rank, default: undefined },
  loraAlpha: { ...LORA_SCHEMA.alpha, default: undefined },
  loraInit: { ...LORA_SCHEMA.init, default: undefined },
  loraTargets: LORA_SCHEMA.targets,
} as const;

/** The trainer options with the --lora-* flags as its `lora` option (over a `lora` of the config's trainer). */
function withLora(
  trainer: Record<string, unknown> | undefined,
  o: { loraRank?: number; loraAlpha?: number; loraInit?: string; loraTargets?: unknown },
): Record<string, unknown> | undefined {
  const lora = { rank: o.loraRank, alpha: o.loraAlpha, init: o.loraInit, targets: o.loraTargets };
  const given = Object.entries(lora).filter(([, v]) => v !== undefined);
  if (given.length === 0) return trainer;
  return {
    ...trainer,
    lora: { ...objectOption("the config's trainer.lora", trainer?.lora), ...Object.fromEntries(given) },
  };
}

// "a,b": LoRA target modules, checked against the network's own (LoraLayout) when the run starts.
function moduleList(value: string): string[] {
  const names = value.split(',').map((name) => name.trim());
  if (names.some((name) => name === '')) throw new InvalidArgumentError('expected module names separated by commas');
  return names;
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

/**
 * Whether this process reports the job: under an MPI launcher (docs/distributed.md) it opens the world the trainers
 * then share, and only rank 0 prints and writes; in one process, always.
 */
function reports(what: string, distributed: unknown): boolean {
  return (openWorld(what, distributed)?.rank ?? 0) === 0;
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
  .addOption(flag('--preset <name>', 'network preset: D (DiT) or M (MLP)', PRETRAIN_OPTIONS.preset))
  .addOption(flag('--minutes <n>', 'stop after this many minutes', PRETRAIN_OPTIONS.minutes))
  .addOption(flag('--steps <n>', 'stop after this many optimiser steps', PRETRAIN_OPTIONS.steps))
  .addOption(flag('--batch <n>', 'samples per step', PRETRAIN_OPTIONS.batch))
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
  .option('--with-optimizer', 'also save the AdamW state (3× the size), for an exact --from continuation')
  .addOption(flag('--out <path>', 'checkpoint to write', PRETRAIN_OPTIONS.out))
  .option('--config <file>', 'JSON file with any of these options')
  .action(async (given, command: Command) => {
    const o = withConfig(given as Record<string, unknown> & { config?: string }, command, PRETRAIN_OPTIONS) as {
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
      images?: string;
      withOptimizer?: boolean;
      out: string;
    };
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
  .addOption(flag('--method <name>', 'RL method', TRAIN_OPTIONS.method))
  .requiredOption('--base <checkpoint>', 'the base model (or a run to resume with --resume)')
  .option('--resume', 'continue the trainer state saved in --base')
  .addOption(flag('--epochs <n>', 'stop after this many epochs', TRAIN_OPTIONS.epochs))
  .addOption(flag('--minutes <n>', 'stop after this many minutes of training', TRAIN_OPTIONS.minutes))
  .addOption(flag('--eval-every <n>', 'evaluate on the test prompts every n epochs', TRAIN_OPTIONS.evalEvery))
  .addOption(flag('--out <dir>', 'output folder', TRAIN_OPTIONS.out))
  .addOption(
    flag(
      '--lora-rank <n>',
      `train LoRA adapters of this rank instead of every weight (default with LoRA: ${LORA_SCHEMA.rank.default}); the run also writes adapter.safetensors`,
      TRAIN_OPTIONS.loraRank,
    ),
  )
  .addOption(
    flag(
      '--lora-alpha <x>',
      `LoRA scale alpha (default with LoRA: ${LORA_SCHEMA.alpha.default})`,
      TRAIN_OPTIONS.loraAlpha,
    ),
  )
  .addOption(
    flag('--lora-init <name>', `LoRA A init (default with LoRA: ${LORA_SCHEMA.init.default})`, TRAIN_OPTIONS.loraInit),
  )
  .addOption(
    flag(
      '--lora-targets <list>',
      `LoRA target modules of every block, comma-separated (default with LoRA: ${LORA_DEFAULT_TARGETS.dit.join(',')} for a DiT, ${LORA_DEFAULT_TARGETS.mlp.join(',')} for an MLP)`,
      TRAIN_OPTIONS.loraTargets,
    ).argParser(moduleList),
  )
  .option('--config <file>', 'JSON file with these options and a "trainer" object of trainer options')
  .addOption(dashboardOption())
  .option('--json', 'end with a JSON summary on stdout (the progress log goes to stderr)')
  .action(async (given, command: Command) => {
    const o = withConfig(given as Record<string, unknown> & { config?: string }, command, TRAIN_OPTIONS) as {
      method: 'nft' | 'flowgrpo';
      base: string;
      resume?: boolean;
      epochs?: number;
      minutes?: number;
      evalEvery: number;
      out: string;
      trainer?: Record<string, unknown>;
      loraRank?: number;
      loraAlpha?: number;
      loraInit?: string;
      loraTargets?: unknown;
      dashboard?: true | number;
      json?: boolean;
    };
    if (o.epochs === undefined && o.minutes === undefined) throw new InvalidArgumentError('give --epochs or --minutes');
    objectOption("the config's trainer", o.trainer);
    const started = performance.now();
    const lead = reports("the config's trainer.distributed", o.trainer?.distributed);
    const log = o.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
    const { dashboard, json, loraRank, loraAlpha, loraInit, loraTargets, ...job } = o;
    const trainer = withLora(o.trainer, { loraRank, loraAlpha, loraInit, loraTargets });
    const { points } = await withDashboard(lead ? dashboard : undefined, [o.out], () =>
      trainShapes({ ...job, trainer, signal: interruptible(), log }),
    );
    if (json && lead) {
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
  .option('--adapter <path>', "apply this LoRA adapter (a LoRA run's adapter.safetensors, or a PEFT adapter folder)")
  .requiredOption('--prompt <text...>', "shapes prompts, e.g. 'a circle left of a square' 'two triangles'")
  .option('--n <n>', 'samples of each prompt', integer(1), 8)
  .option('--cfg <scale>', CFG_HELP, number, 1)
  .addOption(cfgIntervalOption())
  .option('--steps <n>', 'Euler steps', integer(1), 40)
  .option('--seed <n>', 'noise seed', integer(0), 7)
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

program
  .command('merge')
  .description('fold a LoRA adapter into its base model: a full checkpoint that needs no adapter')
  .requiredOption('--base <checkpoint>', 'the base model (or a LoRA run checkpoint, which carries its adapter)')
  .option(
    '--adapter <path>',
    "the adapter (a LoRA run's adapter.safetensors, or a PEFT adapter folder); default: the one --base carries",
  )
  .requiredOption('--out <path>', 'checkpoint to write')
  .action(async (o: { base: string; adapter?: string; out: string }) => {
    const { net } = await loadCheckpoint(o.base);
    if (o.adapter !== undefined) await loadAdapter(o.adapter, net);
    const lora = net.lora;
    if (lora === null) throw new InvalidArgumentError(`${o.base} carries no LoRA adapter: give --adapter`);
    net.mergeLora();
    await saveCheckpoint(o.out, net, { optimizer: false });
    console.log(`wrote ${o.out}: ${o.base} with the rank-${lora.rank} adapter on ${lora.targets.join(', ')} merged`);
  });

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
  const { rank, size } = currentWorld();
  const where = size > 1 ? ` (rank ${rank} of ${size})` : '';
  console.error(`error${where}: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
  // The other ranks may be waiting for this one in a collective (or MPI_Finalize): end the whole job now rather than
  // leave them to the collective timeout.
  if (size > 1) native().mpiAbort('ending the job after the error above', 1);
});
