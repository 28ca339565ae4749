// `npm run bench -- soak`: a long run in one process (not a test) that watches the resident memory: 10,000
// flow-matching steps, 1,000 samplings and 200 epochs of each online trainer, with RSS sampled every 500 calls.
// Reports the growth after a warm-up (the first fifth of each phase); the goal is under 10 MB.
//   node dist/bench/soak.js [--scale 0.1]   (a fraction of the counts, for a quick look)
import { parseArgs } from 'node:util';
import { DiffusionNFT, FlowGRPO, FlowMatchingTrainer, sample, Tensor, VelocityNet } from '../lib/index.js';

const MiB = 2 ** 20;

interface Phase {
  phase: string;
  calls: number;
  seconds: number;
  rssAfterWarmupMiB: number;
  rssEndMiB: number;
  growthMiB: number;
}

/** Runs `call` `count` times, sampling RSS every 500 calls; growth is measured from the end of the warm-up. */
async function phase(name: string, count: number, call: (i: number) => Promise<unknown>): Promise<Phase> {
  const warmup = Math.max(1, Math.floor(count / 5));
  const started = performance.now();
  let afterWarmup = process.memoryUsage().rss;
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    await call(i);
    if (i + 1 === warmup) afterWarmup = process.memoryUsage().rss;
    if ((i + 1) % 500 === 0 || i + 1 === count) samples.push(process.memoryUsage().rss);
  }
  const end = samples.at(-1) ?? process.memoryUsage().rss;
  const result = {
    phase: name,
    calls: count,
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    rssAfterWarmupMiB: Number((afterWarmup / MiB).toFixed(1)),
    rssEndMiB: Number((end / MiB).toFixed(1)),
    growthMiB: Number(((end - afterWarmup) / MiB).toFixed(1)),
  };
  console.log(JSON.stringify({ ...result, rssSamplesMiB: samples.map((s) => Math.round(s / MiB)) }));
  return result;
}

async function main() {
  const { values } = parseArgs({ options: { scale: { type: 'string', default: '1' } } });
  const scale = Number(values.scale);
  const n = (count: number) => Math.max(10, Math.round(count * scale));
  const net = VelocityNet.create({ width: 64, depth: 2 }, { seed: 1 });
  const cond = Tensor.fromInt32(
    new Int32Array(64).map((_, i) => i % 4),
    [64, 1],
  );
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
  const phases: Phase[] = [];
  phases.push(
    await phase('flow-matching steps', n(10_000), (i) =>
      trainer.step({ x0: Tensor.randn([64, 2], { seed: i }), cond }),
    ),
  );
  phases.push(await phase('samplings', n(1_000), (i) => sample(net, { cond, steps: 10, seed: i })));
  const online = {
    prompts: [{ tokens: [1] }, { tokens: [2] }, { tokens: [3] }],
    rewards: (x: Tensor) => Array.from({ length: x.shape[0] as number }, (_, i) => x.storage[2 * i] as number),
    groups: 4,
    groupSize: 8,
    steps: 6,
  };
  const nft = new DiffusionNFT(net, online);
  phases.push(await phase('DiffusionNFT epochs', n(200), () => nft.epoch()));
  const grpo = new FlowGRPO(net, online);
  phases.push(await phase('FlowGRPO epochs', n(200), () => grpo.epoch()));
  net.dispose();
  const worst = Math.max(...phases.map((p) => p.growthMiB));
  console.log(JSON.stringify({ soak: phases, worstGrowthMiB: worst, goalMiB: 10, ok: worst < 10 }));
}

await main();
