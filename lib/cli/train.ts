// `diffusion-nft train`: a shapes base model post-trained with DiffusionNFT, FlowGRPO, AWM, DGPO, Flow-GRPO-Fast,
// MixGRPO or GRPO-Guard. Its flags and its --config
// file take the RL job's table (lib/jobs/shapes/train.ts), a "trainer" object of trainer options and the LoRA flags.
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { SHAPES_BASE } from '../jobs/demo-shapes.js';
import { TRAIN_SHAPES_SCHEMA, trainShapes } from '../jobs/shapes/train.js';
import { SDE_KIND } from '../options/grpo-loss.js';
import { LORA_DEFAULT_TARGETS, LORA_SCHEMA } from '../options/lora.js';
import { MICRO_BATCH } from '../options/optimizer.js';
import { objectOption, type Resolved } from '../options/schema.js';
import { type DashboardFlag, dashboardOption, withDashboard } from './dashboard.js';
import { type ConfigFlag, flag, microBatchOption, withConfig } from './flags.js';
import { interruptible, reports } from './job.js';

const { method, base, resume, epochs, minutes, evalEvery, evalSamplesPerPrompt, out } = TRAIN_SHAPES_SCHEMA;

/** The options of `train`, for its flags and its --config file (`trainer` holds the trainer's own options). */
const TRAIN_OPTIONS = {
  method,
  base: { ...base, default: SHAPES_BASE },
  resume,
  epochs,
  minutes,
  evalEvery,
  // The job's evalSamplesPerPrompt, named as the flag of `demo` and `eval`.
  samplesPerPrompt: evalSamplesPerPrompt,
  out,
  trainer: { type: 'value' },
  // The trainer's microBatch (over the config's trainer.microBatch).
  microBatch: { ...MICRO_BATCH, default: undefined },
  // The likelihood methods' stochastic step (the trainer's `sde` option), over the config's trainer.sde.
  sde: { ...SDE_KIND, default: undefined },
  // LoRA (docs/lora.md): any of these trains adapters, the others taking LORA_SCHEMA's defaults.
  loraRank: { ...LORA_SCHEMA.rank, default: undefined },
  loraAlpha: { ...LORA_SCHEMA.alpha, default: undefined },
  loraInit: { ...LORA_SCHEMA.init, default: undefined },
  loraTargets: LORA_SCHEMA.targets,
} as const;

/** The flags of `train`: its table's, and those a config file cannot set. */
type TrainFlags = Resolved<typeof TRAIN_OPTIONS> & ConfigFlag & DashboardFlag & { json?: boolean };

/** The trainer options with the --lora-* flags as its `lora` option (over a `lora` of the config's trainer). */
function withLora(
  trainer: Record<string, unknown>,
  o: Pick<Resolved<typeof TRAIN_OPTIONS>, 'loraRank' | 'loraAlpha' | 'loraInit' | 'loraTargets'>,
): Record<string, unknown> {
  const lora = { rank: o.loraRank, alpha: o.loraAlpha, init: o.loraInit, targets: o.loraTargets };
  const given = Object.entries(lora).filter(([, v]) => v !== undefined);
  if (given.length === 0) return trainer;
  return {
    ...trainer,
    lora: { ...objectOption("the config's trainer.lora", trainer.lora), ...Object.fromEntries(given) },
  };
}

// "a,b": LoRA target modules, checked against the network's own (LoraLayout) when the run starts.
function moduleList(value: string): string[] {
  const names = value.split(',').map((name) => name.trim());
  if (names.some((name) => name === '')) throw new InvalidArgumentError('expected module names separated by commas');
  return names;
}

/** Registers `train`. */
export function addTrainCommand(program: Command): void {
  program
    .command('train')
    .description('post-train a shapes base model with one of the RL methods of --method (DiffusionNFT by default)')
    .addOption(flag('--method <name>', 'RL method', TRAIN_OPTIONS.method))
    .addOption(
      flag(
        '--base <checkpoint>',
        'the base model, or with --resume the checkpoint of the run to continue (default: the base model shipped in the package)',
        TRAIN_OPTIONS.base,
      ),
    )
    .option('--resume', 'continue the trainer state saved in --base')
    .addOption(flag('--epochs <n>', 'stop after this many epochs', TRAIN_OPTIONS.epochs))
    .addOption(
      flag(
        '--minutes <n>',
        'minutes of training (evaluations excluded), ended at the epoch nearest to them',
        TRAIN_OPTIONS.minutes,
      ),
    )
    .addOption(flag('--eval-every <n>', 'evaluate on the test prompts every n epochs', TRAIN_OPTIONS.evalEvery))
    .addOption(
      flag('--samples-per-prompt <n>', 'samples of each test prompt per evaluation', TRAIN_OPTIONS.samplesPerPrompt),
    )
    .addOption(flag('--out <dir>', 'output folder', TRAIN_OPTIONS.out))
    .addOption(microBatchOption(TRAIN_OPTIONS.microBatch))
    .addOption(
      flag(
        '--sde <name>',
        "the likelihood methods' stochastic step: flow-grpo or cps (default: the method's)",
        TRAIN_OPTIONS.sde,
      ),
    )
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
      flag(
        '--lora-init <name>',
        `LoRA A init (default with LoRA: ${LORA_SCHEMA.init.default})`,
        TRAIN_OPTIONS.loraInit,
      ),
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
    .action(async (given: TrainFlags, command: Command) => {
      const o = await withConfig(given, command, TRAIN_OPTIONS);
      if (o.epochs === undefined && o.minutes === undefined)
        throw new InvalidArgumentError('give --epochs or --minutes');
      if (o.resume && o.base === SHAPES_BASE)
        throw new InvalidArgumentError('--resume needs --base: the checkpoint.safetensors of the run to continue');
      const options = objectOption("the config's trainer", o.trainer);
      const started = performance.now();
      const lead = reports("the config's trainer.distributed", options.distributed);
      const { dashboard, json } = given;
      const log = json ? (line: string) => console.error(line) : (line: string) => console.log(line);
      if (lead) log(`base model: ${o.base}${o.base === SHAPES_BASE ? ' (shipped in the package)' : ''}`);
      const { loraRank, loraAlpha, loraInit, loraTargets, microBatch, sde, samplesPerPrompt, ...job } = o;
      if (sde !== undefined && job.method === 'nft') {
        throw new InvalidArgumentError('--sde sets the step of the likelihood methods, not of nft');
      }
      const trainer = withLora(
        { ...options, ...(microBatch === undefined ? {} : { microBatch }), ...(sde === undefined ? {} : { sde }) },
        {
          loraRank,
          loraAlpha,
          loraInit,
          loraTargets,
        },
      );
      const { points } = await withDashboard(lead ? dashboard : undefined, [o.out], () =>
        trainShapes({ ...job, evalSamplesPerPrompt: samplesPerPrompt, trainer, signal: interruptible(), log }),
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
}
