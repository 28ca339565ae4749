// Your own reward, computed by an HTTP service: DiffusionNFT on the toy 2-D task, rewarded by a local scoring
// service that this example starts. The reward function calls it with a per-request timeout; the trainer repeats a
// call that fails or hangs (rewardRetries, rewardTimeout). The service refuses its second request (the trainer's first), so the
// retry shows.
//   EPOCHS, PRETRAIN_STEPS: the run's size (defaults 20 and 600; the tests run it tiny).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DiffusionNFT, FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from 'diffusion-nft';

const EPOCHS = Number(process.env.EPOCHS ?? 20);
const PRETRAIN_STEPS = Number(process.env.PRETRAIN_STEPS ?? 600);

// The service: POST {points: [x, y][]} → {scores}, the higher the point the better (y clipped to [-2, 2], over 2).
let requests = 0;
const service = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk: Buffer) => {
    body += chunk.toString();
  });
  req.on('end', () => {
    requests += 1;
    if (requests === 2) return res.writeHead(503).end('busy'); // a transient failure
    const { points } = JSON.parse(body) as { points: [number, number][] };
    const scores = points.map(([, y]) => Math.max(-2, Math.min(2, y)) / 2);
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ scores }));
  });
});
await new Promise<void>((done) => service.listen(0, '127.0.0.1', done));
const url = `http://127.0.0.1:${(service.address() as AddressInfo).port}/score`;

// The reward: one request per batch of samples, abandoned after 5 s.
async function heightReward(samples: Tensor): Promise<number[]> {
  const xy = samples.storage;
  const points = Array.from({ length: samples.shape[0] ?? 0 }, (_, i) => [xy[2 * i], xy[2 * i + 1]]);
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ points }),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`the scoring service answered ${response.status}`);
  return ((await response.json()) as { scores: number[] }).scores;
}

const { toy2d } = tasks;
const net = VelocityNet.create(toy2d.config, { seed: 1 });
const pretrain = new FlowMatchingTrainer(net, { lr: 2e-3, schedule: 'cosine', totalSteps: PRETRAIN_STEPS, condDropout: 0.2 });
for (let i = 0; i < PRETRAIN_STEPS; i++) await pretrain.step(toy2d.batch(256, 1, i));

const anyMode = Tensor.fromInt32(new Int32Array(256), [256, 1]);
const meanReward = async () => {
  const scores = await heightReward((await sample(net, { cond: anyMode, steps: 10, seed: 3 })).x);
  return scores.reduce((a, b) => a + b, 0) / scores.length;
};
const before = await meanReward();
const nft = new DiffusionNFT(net, {
  prompts: toy2d.prompts.slice(0, 1),
  rewards: { name: 'height', fn: heightReward },
  rewardTimeout: 10_000, // ms before a call counts as failed
  rewardRetries: 2, // further attempts of a failed call
  groups: 8,
  groupSize: 16,
  lr: 1e-3,
});
await nft.run({ epochs: EPOCHS, onProgress: (s) => console.log(`epoch ${s.epoch}: reward ${s.reward.toFixed(3)}`) });
console.log(`mean reward before ${before.toFixed(3)}, after ${(await meanReward()).toFixed(3)}; ${requests} requests`);
service.close();
