// `diffusion-nft export`: a checkpoint (with its LoRA adapter, or another one, folded in) as an ONNX model.
import { type Command, InvalidArgumentError } from 'commander';
import type { ParamSetName } from '../core/native.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadAdapter } from '../model/lora.js';
import { PARAM_SETS } from '../model/net.js';
import { exportOnnx } from '../model/onnx.js';

function paramSet(value: string): ParamSetName {
  if (!PARAM_SETS.includes(value as ParamSetName)) {
    throw new InvalidArgumentError(`must be one of ${PARAM_SETS.join(', ')}`);
  }
  return value as ParamSetName;
}

/** Registers `export`. */
export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description('write a checkpoint as an ONNX model (opset 17; inputs x, t, cond; output v), LoRA folded in')
    .requiredOption('--checkpoint <path>', 'the model (a LoRA run checkpoint carries its adapter)')
    .option('--adapter <path>', "an adapter to fold in (a LoRA run's adapter.safetensors, or a PEFT adapter folder)")
    .option('--params <set>', "the parameter set: 'theta' (default), or a trainer's 'old', 'ref', 'ema'", paramSet)
    .requiredOption('--out <path>', 'ONNX file to write')
    .action(async (o: { checkpoint: string; adapter?: string; params?: ParamSetName; out: string }) => {
      const { net } = await loadCheckpoint(o.checkpoint);
      if (o.adapter !== undefined) await loadAdapter(o.adapter, net);
      await exportOnnx(net, o.out, o.params === undefined ? {} : { params: o.params });
      const lora = net.lora;
      const folded = lora === null ? '' : `, its rank-${lora.rank} adapter folded in`;
      console.log(`wrote ${o.out}: the ${net.config.arch} of ${o.checkpoint} (step ${net.step})${folded}`);
      net.dispose();
    });
}
