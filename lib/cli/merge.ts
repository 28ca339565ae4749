// `diffusion-nft merge`: a LoRA adapter folded into its base model.
import { type Command, InvalidArgumentError } from 'commander';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { loadAdapter } from '../model/lora.js';

/** Registers `merge`. */
export function addMergeCommand(program: Command): void {
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
}
