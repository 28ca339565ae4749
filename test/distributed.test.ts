// Data parallelism over MPI (docs/distributed.md): runs of test/distributed/*.mjs under 2 ranks against one process
// over the same global batch, with Open MPI's mpirun (libdnft_mpi.so of `npm run build:mpi`), and a subset with
// MPICH's mpiexec.mpich (`npm run build:mpi:mpich`) and with Slurm's `srun --mpi=pmix` on a one-host Slurm that
// scripts/slurm-local.sh starts (as root). scripts/dev.sh test installs all three and builds both libraries.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendInfo } from '../lib/index.js';
import { tempFolder } from './helpers.js';
import { LAUNCHERS, type LauncherName as Launcher, launch, MPICH_LIBRARY, SLURM_DIR } from './mpi-launchers.js';

const env = LAUNCHERS['Open MPI'].env;
const dir = tempFolder('mpi');

/** Runs a script of test/distributed/ under `ranks` ranks (alone for 1) and returns what each rank wrote. */
function run(launcher: Launcher, ranks: number, script: string, ...args: string[]) {
  const name = `${launcher}-${script}-${ranks}-${args.join('-')}`.replace(/[^\w-]/g, '_');
  const out = join(dir, name);
  const command = ranks === 1 ? ['node'] : launch(launcher, ranks, ['node']);
  execFileSync(command[0] as string, [...command.slice(1), `test/distributed/${script}.mjs`, out, ...args], {
    env: LAUNCHERS[launcher].env,
    stdio: 'pipe',
    timeout: 120_000,
  });
  return Array.from({ length: ranks }, (_, r) => JSON.parse(readFileSync(`${out}.${r}.json`, 'utf8')));
}

/** What each of 2 ranks threw (online.mjs writes it beside its output), in rank order. */
const thrown = (out: string) => [0, 1].map((r) => readFileSync(`${out}.${r}.error`, 'utf8'));

/** Runs a script of test/distributed/ under 2 ranks that is meant to fail. */
function runFailing(launcher: Launcher, script: string, ...args: string[]) {
  const argv = launch(launcher, 2, ['node', `test/distributed/${script}.mjs`, ...args]);
  return spawnSync(argv[0] as string, argv.slice(1), {
    env: LAUNCHERS[launcher].env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

const maxDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - (b[i] as number))), 0);

describe('without MPI', () => {
  it('the addon does not link MPI, and asking for distributed without libdnft_mpi.so says how to build it', () => {
    const ldd = execFileSync('ldd', ['build/Release/diffusion_nft.node'], { encoding: 'utf8' });
    expect(ldd).not.toMatch(/mpi/i);
    const r = spawnSync(
      'node',
      [
        '--input-type=module',
        '-e',
        "import { FlowMatchingTrainer, VelocityNet } from './dist/lib/index.js';" +
          'new FlowMatchingTrainer(VelocityNet.create({ dataDim: 2, width: 8, depth: 1 }), { distributed: true });',
      ],
      { env: { ...env, DNFT_MPI_LIBRARY: join(dir, 'missing.so') }, encoding: 'utf8' },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('BackendError');
    expect(r.stderr).toContain('npm run build:mpi');
  });
});

/** The online trainers of test/distributed/online.mjs, every method and variant, run one after the other. */
const TRAINERS = ['nft', 'grpo', 'cps', 'awm', 'dgpo', 'fast', 'mix', 'flash', 'guard'] as const;
type Trainer = (typeof TRAINERS)[number];
type OnlineRun = Record<Trainer, { stats: Record<string, number>[]; params: Record<string, number[]> }>;

/** 3 epochs of every trainer in one process: what 2 ranks must reproduce, the same under every launcher. */
let alone: OnlineRun | undefined;
const oneProcess = (): OnlineRun => {
  alone ??= run('Open MPI', 1, 'online', TRAINERS.join(','), '3')[0] as OnlineRun;
  return alone;
};

/** The checkpoints' path prefix of the 2-rank runs under `launcher` (each trainer saves before its third epoch). */
const savedAt = (launcher: Launcher) => join(dir, `${launcher.replace(/\W/g, '_')}-saved`);

/** 3 epochs of every trainer on 2 ranks under `launcher`, saving checkpoints at savedAt(launcher): both ranks' runs. */
const twoRanks = new Map<Launcher, [OnlineRun, OnlineRun]>();
const onTwoRanks = (launcher: Launcher): [OnlineRun, OnlineRun] => {
  const done = twoRanks.get(launcher);
  if (done !== undefined) return done;
  const ranks = run(launcher, 2, 'online', TRAINERS.join(','), '3', 'save', savedAt(launcher)) as [
    OnlineRun,
    OnlineRun,
  ];
  twoRanks.set(launcher, ranks);
  return ranks;
};

/** Checks 2 ranks of an online trainer against 1 process: epoch stats and every parameter set. */
function checkOnline(trainer: Trainer, one: OnlineRun[Trainer], r0: OnlineRun[Trainer], r1: OnlineRun[Trainer]) {
  // Epoch 1 rolls out the same θ with the same per-sample noise: the forward is batch-invariant, so the rollouts
  // and rewards are bit-identical; later epochs differ by the float32 gradient sums (measured ≤ 3.2e-7 in θ).
  expect(r0.stats[0]?.reward, trainer).toBe(one.stats[0]?.reward);
  expect(r0.stats[0]?.rewardStd, trainer).toBe(one.stats[0]?.rewardStd);
  for (const set of Object.keys(one.params)) {
    expect(maxDiff(one.params[set] as number[], r0.params[set] as number[]), `${trainer} ${set}`).toBeLessThan(1e-5);
    expect(maxDiff(r0.params[set] as number[], r1.params[set] as number[]), `${trainer} ${set}`).toBe(0);
  }
  for (let e = 0; e < 3; e++) {
    expect(r0.stats[e]?.loss, `${trainer} epoch ${e + 1}`).toBeCloseTo(one.stats[e]?.loss as number, 5);
    expect(r0.stats[e]?.reward, `${trainer} epoch ${e + 1}`).toBeCloseTo(one.stats[e]?.reward as number, 5);
    expect(r0.stats[e]?.samples).toBe(16);
  }
}

// One retry: once in about 20 runs a rank under MPICH died inside Node of a fault that never reproduced
// (docs/distributed.md, "Not done or not verified"); a consistent failure still fails.
describe.each(Object.keys(LAUNCHERS) as Launcher[])('over %s', { retry: 1 }, (launcher) => {
  if (launcher === 'Slurm') {
    beforeAll(() => {
      execFileSync('bash', ['scripts/slurm-local.sh', 'start', SLURM_DIR], { stdio: 'pipe', timeout: 60_000 });
    });
    afterAll(() => {
      execFileSync('bash', ['scripts/slurm-local.sh', 'stop', SLURM_DIR], { stdio: 'pipe' });
    });
  }

  it('libdnft_mpi.so is built against this MPI', () => {
    const [library, links] =
      launcher === 'MPICH' ? [MPICH_LIBRARY, /libmpich\.so/] : [resolve('build/mpi/libdnft_mpi.so'), /libmpi\.so/];
    expect(existsSync(library), `${library}: npm run build:mpi${launcher === 'MPICH' ? ':mpich' : ''}`).toBe(true);
    expect(execFileSync('ldd', [library], { encoding: 'utf8' })).toMatch(links);
  });

  it('FlowMatchingTrainer: 2 ranks give the θ and losses of 1 rank over the same global batch, identical on both', () => {
    const [one] = run(launcher, 1, 'flow-matching', '4');
    const [r0, r1] = run(launcher, 2, 'flow-matching', '4');
    expect(r0.size).toBe(2);
    // θ after 4 AdamW steps with lr 1e-2: float32 sums in another order; measured 2.2e-6.
    expect(maxDiff(one.theta, r0.theta)).toBeLessThan(2e-5);
    expect(maxDiff(r0.theta, r1.theta)).toBe(0);
    for (let s = 0; s < 4; s++) {
      expect(r0.stats[s].loss).toBeCloseTo(one.stats[s].loss, 6);
      expect(r0.stats[s].gradNorm).toBeCloseTo(one.stats[s].gradNorm, 5);
    }
  });

  it('every online method: 2 ranks over 4 groups give the epoch stats and parameter sets of 1 process', () => {
    const one = oneProcess();
    const [r0, r1] = onTwoRanks(launcher);
    for (const trainer of TRAINERS) checkOnline(trainer, one[trainer], r0[trainer], r1[trainer]);
    // Flow-GRPO-Fast: 2 ranks roll out the SDE windows of 1 process (one per prompt group). The groups of an epoch drew
    // different windows (a mean start between 0 and 1): a window keyed on a rank's or a chunk's first sample would
    // differ from one process's here.
    const starts = one.fast.stats.map((s) => s.windowStart);
    expect(r0.fast.stats.map((s) => s.windowStart)).toEqual(starts);
    expect(starts.some((start) => (start as number) % 1 !== 0)).toBe(true);
  });

  it('every online method saved at 2 ranks resumes at 1 rank as the uninterrupted 2-rank run continues', () => {
    const [r0] = onTwoRanks(launcher);
    const [resumed] = run(launcher, 1, 'online', TRAINERS.join(','), '1', 'resume', savedAt(launcher)) as [OnlineRun];
    for (const trainer of TRAINERS) {
      const [third, whole] = [resumed[trainer].stats[0], r0[trainer].stats[2]] as Record<string, number>[];
      expect(third?.epoch, trainer).toBe(3);
      expect(third?.step, trainer).toBe(whole?.step);
      // Epoch 3 rolls out the saved parameters with the same per-sample noise: bit-identical rewards, whatever the
      // world size; its training sums the gradients in another order.
      expect(third?.reward, trainer).toBe(whole?.reward);
      expect(third?.rewardStd, trainer).toBe(whole?.rewardStd);
      expect(third?.loss, trainer).toBeCloseTo(whole?.loss as number, 5);
      expect(Object.keys(resumed[trainer].params), trainer).toEqual(Object.keys(r0[trainer].params));
      for (const [set, values] of Object.entries(r0[trainer].params)) {
        expect(maxDiff(resumed[trainer].params[set] as number[], values), `${trainer} ${set}`).toBeLessThan(1e-5);
      }
    }
  });

  it('a rank whose reward throws ends every rank with a DistributedError naming it', () => {
    const started = Date.now();
    const out = join(dir, `${launcher}-fail`);
    const r = runFailing(launcher, 'online', out, 'nft', '2', 'fail');
    expect(r.status).not.toBe(0);
    for (const error of thrown(out)) {
      expect(error).toBe(
        "DistributedError: rank 1 of 2 failed scoring its samples: reward 'target' failed: the scorer is down",
      );
    }
    expect(r.stderr).toContain('DistributedError: rank 1 of 2 failed scoring its samples');
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('a rank that dies ends the job: the launcher stops the others', () => {
    const r = runFailing(launcher, 'online', join(dir, `${launcher}-die`), 'nft', '2', 'die');
    expect(r.error).toBeUndefined(); // not the 60 s timeout
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(LAUNCHERS[launcher].killed);
  });

  it('a rank that hangs ends the job at the collective timeout: the waiting rank aborts it, naming itself', () => {
    const started = Date.now();
    const r = runFailing(launcher, 'online', join(dir, `${launcher}-hang`), 'nft', '2', 'hang');
    expect(r.error).toBeUndefined(); // not the 60 s timeout (rank 1 blocks for 120 s)
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^diffusion-nft: rank 0 of 2: .* did not complete within 2 s .*; aborting the job$/m);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe("a libdnft_mpi.so of another MPI than the launcher's", () => {
  it.each([
    ['MPICH', resolve('build/mpi/libdnft_mpi.so')],
    ['Open MPI', MPICH_LIBRARY],
  ] as const)('under %s is a BackendError, not two worlds of one', (launcher, library) => {
    const argv = launch(launcher, 2, ['node', 'test/distributed/flow-matching.mjs', join(dir, 'wrong')]);
    const r = spawnSync(argv[0] as string, argv.slice(1), {
      env: { ...LAUNCHERS[launcher].env, DNFT_MPI_LIBRARY: library },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    const message = `BackendError: options.distributed: the launcher started 2 ranks but ${library} sees a world of 1`;
    // Each rank throws it; the launcher may stop the second before its message is out.
    expect(r.stderr).toContain(message);
    expect(existsSync(join(dir, 'wrong.0.json'))).toBe(false);
  });
});

describe('over Open MPI', () => {
  it('a batch that does not split over the ranks is a RangeError on every rank', () => {
    const r = runFailing('Open MPI', 'flow-matching', join(dir, 'odd'), '1', '7');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('does not split evenly over 2 ranks');
  });

  it("DGPO's group weights sum over the ranks: groups split between 2 ranks train as in 1 process", () => {
    const [one] = run('Open MPI', 1, 'dgpo-groups');
    const [r0, r1] = run('Open MPI', 2, 'dgpo-groups');
    // Without the sum over the ranks each rank would weigh a group by its own members: another σ(S_g).
    expect(Math.abs(one.stats.weightMean - 0.5)).toBeGreaterThan(0.01);
    expect(r0.stats.weightMean).toBeCloseTo(one.stats.weightMean, 12);
    expect(r0.stats.loss).toBeCloseTo(one.stats.loss, 9);
    expect(maxDiff(one.theta, r0.theta)).toBeLessThan(1e-6);
    expect(maxDiff(r0.theta, r1.theta)).toBe(0);
  });

  it('ranks given different options, prompts or rewards are rejected at the start, on every rank, naming it', () => {
    const cases = {
      mismatch: 'the options differ between rank 0 and rank 1: seed is 5 on rank 0, 6 on rank 1',
      prompts:
        'options.prompts differ between rank 0 and rank 1: options.prompts[2] is {"tokens":[2]} on rank 0, ' +
        '{"tokens":[3]} on rank 1',
      rewards:
        'options.rewards differ between rank 0 and rank 1: options.rewards[0] is {"name":"target","weight":1} on ' +
        'rank 0, {"name":"target","weight":0.5} on rank 1',
    };
    for (const [mode, message] of Object.entries(cases)) {
      const out = join(dir, mode);
      const r = runFailing('Open MPI', 'online', out, 'nft', '1', mode);
      expect(r.status, mode).not.toBe(0);
      for (const error of thrown(out)) expect(error).toContain(`DistributedError: DiffusionNFT: ${message}`);
      expect(r.stderr).toContain(`DistributedError: DiffusionNFT: ${message}`);
    }
  });

  it("deviceCollectives: 'host' sums as 'auto' on the CPU; 'nccl' and ranks that disagree throw on every rank", () => {
    const [auto0] = run('Open MPI', 2, 'flow-matching', '2');
    const [host0, host1] = run('Open MPI', 2, 'flow-matching', '2', '8', 'host');
    expect(host0.theta).toEqual(auto0.theta);
    expect(host1.theta).toEqual(auto0.theta);
    const r = spawnSync(
      'mpirun',
      [
        '--oversubscribe',
        '-np',
        '2',
        'node',
        'test/distributed/flow-matching.mjs',
        join(dir, 'nccl'),
        '1',
        '8',
        'nccl',
      ],
      { env, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status).not.toBe(0);
    const message = "BackendError: FlowMatchingTrainer: deviceCollectives 'nccl' needs NCCL and a model on the GPU";
    expect(r.stderr.split(`${message} on every rank: its model is on the CPU`).length).toBe(3);
    const m = spawnSync(
      'mpirun',
      [
        '--oversubscribe',
        '-np',
        '2',
        'node',
        'test/distributed/flow-matching.mjs',
        join(dir, 'mixed'),
        '1',
        '8',
        'mixed',
      ],
      { env, encoding: 'utf8', timeout: 60_000 },
    );
    expect(m.status).not.toBe(0);
    expect(m.stderr.split('DistributedError: FlowMatchingTrainer: distributed.deviceCollectives differs').length).toBe(
      3,
    );
    expect(m.stderr).toContain("rank 0: 'host', rank 1: 'auto'");
  });
});

describe('the sums of a model on the GPU (a stand-in model, the real NCCL loader)', () => {
  function choose(deviceCollectives: string, library: string) {
    const out = join(dir, `collectives-${deviceCollectives}-${library.length}`);
    execFileSync('mpirun', ['-np', '1', 'node', 'test/distributed/collectives.mjs', out, deviceCollectives], {
      env: { ...env, DNFT_NCCL_LIBRARY: library },
      stdio: 'pipe',
      timeout: 60_000,
    });
    return JSON.parse(readFileSync(`${out}.json`, 'utf8'));
  }
  const missing = '/nonexistent/libnccl.so.2';
  const fake = 'build/fake-nccl/libfake_nccl.so'; // tests/fake_nccl.cpp, a CUDA build's stand-in for NCCL

  it("'auto' without NCCL: the host path, said once by a DNFT_NCCL_FALLBACK warning naming the library and the fix", () => {
    const r = choose('auto', missing);
    expect(r.calls).toEqual([
      [true, false],
      [true, false],
    ]);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0].code).toBe('DNFT_NCCL_FALLBACK');
    expect(r.warnings[0].message).toContain(`cannot load NCCL (${missing})`);
    expect(r.warnings[0].message).toContain('DNFT_NCCL_LIBRARY');
  });

  it("'nccl' without NCCL: a BackendError naming the library and the fix; 'host': no NCCL, no warning", () => {
    const r = choose('nccl', missing);
    expect(r.calls).toEqual([]);
    expect(r.error.name).toBe('BackendError');
    expect(r.error.message).toContain(`deviceCollectives 'nccl' needs NCCL`);
    expect(r.error.message).toMatch(/libnccl\.so\.2.*DNFT_NCCL_LIBRARY/);
    expect(choose('host', missing)).toEqual({
      calls: [
        [true, false],
        [true, false],
      ],
      warnings: [],
    });
  });

  it.skipIf(!backendInfo().compiledWithCuda)("'auto' with a loadable NCCL asks the model for NCCL", () => {
    expect(choose('auto', fake)).toEqual({
      calls: [
        [true, true],
        [true, true],
      ],
      warnings: [],
    });
  });
});
