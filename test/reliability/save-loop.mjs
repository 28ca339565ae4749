// The saver of the kill-during-save test: `node save-loop.mjs KIND PATH` saves two different states A and B to PATH
// in turn until killed, printing `ready` after the first complete save. KIND is one of SAVE_KINDS: a checkpoint, an
// adapter file, a PEFT adapter folder, or a run's metrics (a MetricsLog opened again on the run, as a resume does,
// then records appended).

import { saveAdapter, saveCheckpoint, savePeftAdapter, VelocityNet } from '../../dist/lib/index.js';
import { MetricsLog } from '../../dist/lib/metrics/log.js';

export const SAVE_KINDS = ['checkpoint', 'adapter', 'peft', 'metrics'];

const CONFIG = { width: 64, depth: 3 };

/** State A (0) or B (1): networks of distinct parameters and adapters (ranks 2 and 4). */
export function state(which) {
  return VelocityNet.create(CONFIG, { seed: 11 + which, lora: { rank: 2 + 2 * which, seed: 3 + which } });
}

/** Saves state `which` of `kind` to `path`. */
async function save(kind, path, net, which, round) {
  if (kind === 'checkpoint') await saveCheckpoint(path, net);
  else if (kind === 'adapter') await saveAdapter(path, net);
  else if (kind === 'peft') await savePeftAdapter(path, net);
  else {
    const log = await MetricsLog.open({ dir: path, epoch: round, trainer: `T${which}`, onUnreadable: () => {} });
    const seconds = { total: 0.5, rollout: 0.2, reward: 0.1, train: 0.2 };
    await log.epoch({ epoch: round + 1, samples: 8, seconds, reward: which, rewards: {}, loss: 0.5 });
  }
}

const [kind, path] = process.argv.slice(2);
if (kind !== undefined) {
  const nets = [state(0), state(1)];
  for (let round = 0; ; round++) {
    await save(kind, path, nets[round % 2], round % 2, round);
    if (round === 0) process.stdout.write('ready\n');
  }
}
