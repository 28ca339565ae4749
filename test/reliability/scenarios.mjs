// Scenarios that can kill or hang a process, run by test/reliability-*.test.ts in a child process of their own:
// `node test/reliability/scenarios.mjs NAME`. Each prints one JSON line of findings and exits 0; a crash, an
// unhandled rejection or a hang shows as another exit code or a timeout in the test.
import { Worker } from 'node:worker_threads';
import {
  BusyError,
  DiffusionNFT,
  DisposedError,
  FlowGRPO,
  FlowMatchingTrainer,
  RewardError,
  setThreads,
  Tensor,
  VelocityNet,
} from '../../dist/lib/index.js';

const PROMPTS = [{ tokens: [1] }, { tokens: [2] }];
const ok = (n) => new Array(n.shape[0]).fill(0.5);

function trainerOf(kind, net, rewards, extra = {}) {
  const options = { prompts: PROMPTS, rewards, groups: 4, groupSize: 4, chunk: 4, steps: 3, seed: 1, ...extra };
  return kind === 'nft' ? new DiffusionNFT(net, options) : new FlowGRPO(net, options);
}

function describe(error) {
  return {
    name: error?.constructor?.name,
    message: String(error?.message),
    reward: error?.reward,
    cause: error?.cause === undefined ? undefined : String(error.cause?.message ?? error.cause),
  };
}

/** Each failing reward, on epoch() and run(), of both trainers: the error, and whether the network changed. */
async function rewardFailures() {
  let calls = 0;
  const failing = {
    throws: () => {
      calls += 1;
      if (calls >= 2) throw new Error('scorer crashed');
      return [0, 0, 0, 0];
    },
    rejects: async () => {
      calls += 1;
      if (calls >= 2) throw new Error('scorer rejected');
      return [0, 0, 0, 0];
    },
    'wrong length': () => [1, 2],
  };
  const results = [];
  for (const kind of ['nft', 'grpo']) {
    for (const [what, fn] of Object.entries(failing)) {
      for (const call of ['epoch', 'run']) {
        calls = 0;
        const net = VelocityNet.create({ width: 16, depth: 1 }, { seed: 2 });
        const trainer = trainerOf(kind, net, { name: 'judge', fn });
        const before = net.getParameters();
        let error;
        try {
          if (call === 'epoch') await trainer.epoch();
          else await trainer.run({ epochs: 2 });
        } catch (e) {
          error = e;
        }
        const unchanged = net.getParameters().every((v, i) => v === before[i]) && net.step === 0;
        // The same trainer retries the epoch once the reward works again.
        trainer.rewardFns[0].fn = ok;
        const retried = await trainer.epoch().then(
          (stats) => stats.epoch === 1,
          () => false,
        );
        results.push({
          kind,
          what,
          call,
          error: describe(error),
          isRewardError: error instanceof RewardError,
          unchanged,
          retried,
        });
        net.dispose();
      }
    }
  }
  return results;
}

/** A reward that never settles ends at the timeout; a reward that fails once succeeds with a retry. */
async function rewardTimeout() {
  const net = VelocityNet.create({ width: 16, depth: 1 }, { seed: 2 });
  const never = trainerOf('nft', net, { name: 'remote', fn: () => new Promise(() => {}) }, { rewardTimeout: 100 });
  const started = Date.now();
  const error = await never.epoch().catch((e) => e);
  const waited = Date.now() - started;
  let attempts = 0;
  const flaky = trainerOf(
    'grpo',
    net,
    {
      name: 'flaky',
      fn: (x) => {
        attempts += 1;
        if (attempts === 1) return new Promise(() => {});
        return ok(x);
      },
    },
    { rewardTimeout: 100, rewardRetries: 1 },
  );
  const stats = await flaky.epoch();
  net.dispose();
  return {
    error: describe(error),
    isRewardError: error instanceof RewardError,
    waited,
    retried: stats.epoch,
    attempts,
  };
}

/** setThreads while a long native call runs: refused with BusyError (never a hang); allowed once it settles. */
async function setThreadsDuringWork() {
  const net = VelocityNet.create({ width: 256, depth: 4 }, { seed: 1 });
  const x = Tensor.randn([8192, 2], { seed: 1 });
  const cond = Tensor.fromInt32(new Int32Array(8192), [8192, 1]);
  const results = [];
  for (let i = 0; i < 5; i++) {
    const pending = net.velocity(x, 0.5, cond);
    // Give the worker thread time to enter the native call.
    await new Promise((resolve) => setTimeout(resolve, 20));
    let error;
    try {
      setThreads(1 + (i % 2));
    } catch (e) {
      error = e;
    }
    await pending;
    results.push(error instanceof BusyError ? 'busy' : error === undefined ? 'applied' : describe(error));
  }
  setThreads(2);
  const after = await net.velocity(x, 0.5, cond);
  net.dispose();
  return { results, finite: after.toArray().every(Number.isFinite) };
}

/** Trains one small model for a few steps and returns its parameters (run both here and in worker threads). */
export async function trainSmall(seed) {
  const net = VelocityNet.create({ width: 32, depth: 2 }, { seed });
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-3, seed });
  for (let i = 0; i < 20; i++) {
    const x0 = Tensor.randn([64, 2], { seed: seed * 100 + i });
    await trainer.step({ x0, cond: Tensor.fromInt32(new Int32Array(64), [64, 1]) });
  }
  const params = net.getParameters();
  net.dispose();
  return params;
}

/** The addon in four worker threads at once, each training its own model: the same results as one by one here. */
async function workers() {
  const seeds = [1, 2, 3, 4];
  const expected = [];
  for (const seed of seeds) expected.push(await trainSmall(seed));
  const url = new URL('./worker.mjs', import.meta.url);
  const got = await Promise.all(
    seeds.map(
      (seed) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(url, { workerData: { seed } });
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
  return { equal: got.map((params, k) => params.every((v, i) => v === expected[k][i])) };
}

/** dispose() right after a step is started lets the step finish; calls after it are DisposedErrors. */
async function disposeDuringStep() {
  const net = VelocityNet.create({ width: 64, depth: 2 }, { seed: 1 });
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
  const x0 = Tensor.randn([256, 2], { seed: 1 });
  const cond = Tensor.fromInt32(new Int32Array(256), [256, 1]);
  const steps = [trainer.step({ x0, cond }), trainer.step({ x0, cond })];
  const velocity = net.velocity(x0, 0.5, cond);
  net.dispose();
  const settled = await Promise.allSettled([...steps, velocity]);
  const after = await trainer.step({ x0, cond }).catch((e) => e);
  return {
    settled: settled.map((s) => s.status),
    after: after instanceof DisposedError,
    syncAfter: (() => {
      try {
        net.getParameters();
        return 'no error';
      } catch (e) {
        return e instanceof DisposedError;
      }
    })(),
  };
}

const scenarios = { rewardFailures, rewardTimeout, setThreadsDuringWork, workers, disposeDuringStep };
const name = process.argv[2];
if (name !== undefined) {
  const run = scenarios[name];
  if (run === undefined) throw new Error(`unknown scenario ${name}`);
  console.log(JSON.stringify(await run()));
}
