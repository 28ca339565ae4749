// Plain state dicts: the parameters of a network as safetensors without our `dnft.*` metadata, e.g. a PyTorch
// `state_dict()` of a reference/ network. The config comes from the caller; every tensor is checked against the
// network's layout and all the problems are reported together (docs/guide.md, "Weights from and to PyTorch").

import { flatten, headerProblems } from '../core/checks.js';
import { CheckpointError, excerpt, StateDictError } from '../core/errors.js';
import { native } from '../core/native.js';
import { type NetConfig, type NetPreset, resolveNetConfig } from '../options/net-config.js';
import { withLoad } from './checkpoint.js';
import { type CreateOptions, VelocityNet } from './net.js';

/** Options of loadStateDict. */
export interface LoadStateDictOptions {
  /** Load into this network (same config) instead of creating one; it is unchanged if loading fails. */
  into?: VelocityNet;
  /** Backend of the network created, as in CreateOptions.device. */
  device?: CreateOptions['device'];
  /** GPU matrix-product arithmetic of the network created, as in CreateOptions.precision. */
  precision?: CreateOptions['precision'];
}

/**
 * Reads a plain state dict (parameters under their `params` names, e.g. `torch`'s `state_dict()` of the reference/
 * networks saved with safetensors; F32, or F16/BF16 widened) into a network of `config` (fields over a preset, as
 * VelocityNet.create). Every tensor is checked before anything is allocated: a StateDictError lists each missing,
 * unexpected, mis-shaped, mistyped or non-finite tensor; any other problem with the file is a CheckpointError; a
 * file with `dnft.format` metadata is one of our checkpoints, for loadCheckpoint. Nothing changes on failure.
 */
export async function loadStateDict(
  path: string,
  config: Partial<NetConfig> & { preset?: NetPreset },
  options: LoadStateDictOptions = {},
): Promise<VelocityNet> {
  const resolved = resolveNetConfig(config);
  const into = (options as LoadStateDictOptions | null)?.into;
  if (into instanceof VelocityNet && JSON.stringify(into.config) !== JSON.stringify(resolved)) {
    throw new RangeError(
      `config ${JSON.stringify(resolved)} does not match the network's ${JSON.stringify(into.config)}`,
    );
  }
  return withLoad('loadStateDict', 'state dict', path, options, ['into', 'device', 'precision'], async (file, load) => {
    const format = file.metadata['dnft.format'];
    if (format !== undefined) {
      throw new CheckpointError(
        `${path} is a diffusion-nft file (dnft.format ${excerpt(format)}): load it with loadCheckpoint`,
      );
    }
    const layout = native().paramLayout({ ...resolved });
    const problems = headerProblems(file.tensors, layout);
    if (problems.length > 0) throw new StateDictError(path, problems);
    const flat = flatten(path, await file.readTensors(), layout);
    const net = load.target(resolved);
    net.setParameters(flat);
    return net;
  });
}
