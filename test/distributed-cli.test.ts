// The CLI under mpirun (docs/distributed.md, "The CLI under mpirun"): 2 ranks of `pretrain` and `train` on tiny
// settings. Each rank gets its own --out (an MPMD launch, `mpirun A : B`; --out is no part of the run every rank must
// agree on), so that what rank 1 writes, if anything, can be seen. Each case under Open MPI (`npm run build:mpi`) and
// MPICH (`npm run build:mpi:mpich`).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecords } from '../lib/metrics/records.js';
import { tempFolder } from './helpers.js';
import { LAUNCHERS, launchEach, MPMD_LAUNCHERS, type MpmdLauncher } from './mpi-launchers.js';

const dir = tempFolder('mpi-cli');

interface Launch {
  status: number | null;
  out: string;
  err: string;
  /** Milliseconds from the first `error (rank r of n)` line to the end of the job (NaN without one). */
  afterError: number;
}

/** What the launcher's stderr holds when rank 1 cannot read its base. */
const RANK1_MISSING_BASE = /^error \(rank 1 of 2\): .*missing\.safetensors/m;

/** The CLI with rank 0's arguments and rank 1's, under Open MPI's mpirun or MPICH's mpiexec. */
function mpirun(rank0: string[], rank1: string[], launcher: MpmdLauncher, wrap1 = (p: string[]) => p): Promise<Launch> {
  const cli = (args: string[]) => ['node', 'dist/lib/cli.js', ...args];
  const [command, ...args] = launchEach(launcher, [cli(rank0), wrap1(cli(rank1))]);
  const child = spawn(command as string, args, { env: LAUNCHERS[launcher].env });
  const launch: Launch = { status: null, out: '', err: '', afterError: Number.NaN };
  let errorAt: number | undefined;
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => child.kill('SIGKILL'), 280_000);
    child.stdout.on('data', (chunk: Buffer) => {
      launch.out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      launch.err += chunk.toString();
      if (errorAt === undefined && /^error \(rank \d of 2\)/m.test(launch.err)) errorAt = performance.now();
    });
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(guard);
      if (errorAt !== undefined) launch.afterError = performance.now() - errorAt;
      resolve({ ...launch, status });
    });
  });
}

const count = (text: string, pattern: RegExp) => (text.match(new RegExp(pattern, 'gm')) ?? []).length;

describe('the CLI under mpirun -np 2', () => {
  const base = join(dir, 'rank0', 'base.safetensors');
  const config = join(dir, 'tiny.json');
  writeFileSync(config, JSON.stringify({ trainer: { groups: 2, groupSize: 2 } }));
  // One epoch of train from `from` into `out`, and a base that does not exist.
  const epochFlags = ['--config', config, '--epochs', '1'];
  const train = (from: string, out: string) => ['train', '--base', from, ...epochFlags, '--out', out];
  const missing = join(dir, 'missing.safetensors');

  // Each launcher's pretrain writes its own base, which its train then starts from.
  const bases = { 'Open MPI': base, MPICH: join(dir, 'rank0', 'mpich-base.safetensors') };
  const runs = { 'Open MPI': join(dir, 'rank0', 'run'), MPICH: join(dir, 'rank0', 'mpich-run') };

  it.each(MPMD_LAUNCHERS)(
    '%s: pretrain: rank 0 alone prints the report and writes the checkpoint',
    async (launcher) => {
      const args = ['pretrain', '--preset', 'M', '--steps', '2', '--batch', '8', '--out'];
      const r = await mpirun([...args, bases[launcher]], [...args, join(dir, 'rank1', 'base.safetensors')], launcher);
      expect(r.status, r.err).toBe(0);
      expect(count(r.out, /^pretrain: \d+ parameters \(mlp\), batch 8$/)).toBe(1);
      expect(count(r.out, /^base, no CFG: strict \d\.\d{3}/)).toBe(1);
      expect(count(r.out, /^base, CFG 5 at t ≤ 0.6: strict/)).toBe(1);
      expect(count(r.out, /^wrote .*: 2 steps in/)).toBe(1);
      expect(count(r.err, /steps 2\/2/)).toBe(1);
      expect(existsSync(bases[launcher])).toBe(true);
      expect(existsSync(join(dir, 'rank1'))).toBe(false);
    },
    300_000,
  );

  it.each(MPMD_LAUNCHERS)(
    '%s: train --json --lora-rank: one JSON summary and one progress log; rank 0 alone writes the run and adapter',
    async (launcher) => {
      const args = ['train', '--base', bases[launcher], '--config', config, '--epochs', '1', '--lora-rank', '2'];
      const out = runs[launcher];
      const r = await mpirun(
        [...args, '--json', '--out', out],
        [...args, '--json', '--out', join(dir, 'rank1', 'run')],
        launcher,
      );
      expect(r.status, r.err).toBe(0);
      // stdout is the one summary, nothing else.
      expect(JSON.parse(r.out)).toMatchObject({
        method: 'nft',
        epochs: 1,
        checkpoint: join(out, 'checkpoint.safetensors'),
      });
      expect(count(r.err, /^epoch +0 /)).toBe(1);
      expect(count(r.err, /^epoch +1 /)).toBe(1);
      expect(count(r.err, /^done in /)).toBe(1);
      for (const file of ['checkpoint.safetensors', 'adapter.safetensors', 'config.json', 'strict-vs-epoch.png']) {
        expect(existsSync(join(out, file)), file).toBe(true);
      }
      const records = parseRecords(readFileSync(join(out, 'metrics.jsonl'), 'utf8'));
      expect(records.filter((x) => x.kind === 'epoch').map((x) => x.epoch)).toEqual([1]);
      expect(existsSync(join(dir, 'rank1'))).toBe(false);
    },
    300_000,
  );

  it.each(MPMD_LAUNCHERS)(
    '%s: an error on one rank prints it with its rank and ends every rank within seconds',
    async (launcher) => {
      // Rank 0 cannot create its output folder, while rank 1 goes on to the first epoch's collectives and waits there.
      const blocked = join(dir, `${launcher}-file`);
      writeFileSync(blocked, '');
      const r0 = await mpirun(train(base, join(blocked, 'run')), train(base, join(dir, 'rank1', 'run')), launcher);
      expect(r0.status).not.toBe(0);
      expect(r0.err, r0.out).toMatch(/^error \(rank 0 of 2\): ENOTDIR: not a directory/m);
      // Without MPI_Abort rank 1 would wait for the collective timeout (600 s).
      expect(r0.afterError).toBeLessThan(20_000);

      // Rank 1 cannot read its base, while rank 0 goes on to the trainer's start-up check and waits there.
      const r1 = await mpirun(
        train(base, join(dir, 'rank0', 'run-2')),
        train(missing, join(dir, 'rank1', 'run')),
        launcher,
      );
      expect(r1.status).not.toBe(0);
      expect(r1.err, r1.out).toMatch(RANK1_MISSING_BASE);
      expect(r1.afterError).toBeLessThan(20_000);
      expect(existsSync(join(dir, 'rank1'))).toBe(false);
    },
    300_000,
  );

  it.each(MPMD_LAUNCHERS)(
    "%s: the error of the rank that aborts reaches the launcher's stderr in each of 24 launches, two at a time",
    async (launcher) => {
      // A launcher that takes the abort before it has read the rank's stderr pipe drops the message: Hydra did so in
      // about 1 of 20 such launches before the library paused ahead of MPI_Abort (native/mpi/dnft_mpi.cpp).
      const launchOnce = (i: number) =>
        mpirun(
          train(base, join(dir, 'rank0', `lost-${launcher}-${i}`)),
          train(missing, join(dir, 'rank1', 'run')),
          launcher,
        );
      const lost: string[] = [];
      for (let i = 0; i < 24; i += 2) {
        const pair = await Promise.all([launchOnce(i), launchOnce(i + 1)]);
        pair.forEach((r, j) => {
          expect(r.status).not.toBe(0);
          if (!RANK1_MISSING_BASE.test(r.err)) lost.push(`${i + j}: ${r.err}`);
          else expect(r.afterError).toBeLessThan(20_000);
        });
      }
      expect(lost, 'launches whose stderr lacks the error, with what they printed').toEqual([]);
    },
    300_000,
  );

  it.each(MPMD_LAUNCHERS)(
    '%s: a rank whose stderr is read 2 s late still has its error printed before the job ends',
    async (launcher) => {
      // Rank 1's stderr goes through a pipe that a shell starts reading only after 2 s, a launcher far behind: the rank
      // holds its abort until the pipe is read (a fixed pause ahead of MPI_Abort lost the message every time).
      const late = (program: string[]) => ['bash', '-c', 'exec "$@" 2> >(sleep 2; cat >&2)', 'late', ...program];
      const r = await mpirun(
        train(base, join(dir, 'rank0', `late-${launcher}`)),
        train(missing, join(dir, 'rank1', 'run')),
        launcher,
        late,
      );
      expect(r.status).not.toBe(0);
      expect(r.err, r.out).toMatch(RANK1_MISSING_BASE);
    },
    300_000,
  );
});
