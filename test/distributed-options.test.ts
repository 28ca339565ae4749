// The parts of data parallelism that need no MPI (docs/distributed.md): the `distributed` option's table, the GPU a
// rank takes, and the NCCL loader's error when libnccl.so.2 is absent.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { defaultGpu, localRank } from '../lib/core/launcher.js';
import { backendInfo, FlowMatchingTrainer, VelocityNet } from '../lib/index.js';
import { openWorld } from '../lib/training/distributed.js';

describe('the distributed option', () => {
  it('checks its fields against one table before touching MPI', () => {
    const net = VelocityNet.create({ dataDim: 2, width: 8, depth: 1 });
    const make = (distributed: unknown) => () =>
      new FlowMatchingTrainer(net, { distributed } as ConstructorParameters<typeof FlowMatchingTrainer>[1]);
    expect(make({ deviceCollectives: 'gpu' })).toThrow(
      /options\.distributed\.deviceCollectives must be 'auto', 'nccl' or 'host', got gpu/,
    );
    expect(make({ timeout: -1 })).toThrow(/options\.distributed\.timeout must be a number in \[0, 1000000000\]/);
    expect(make({ checkEvery: 1.5 })).toThrow(RangeError);
    expect(make({ collectives: 'nccl' })).toThrow(/unknown option 'collectives'/);
    expect(make('yes')).toThrow(/must be a boolean or \{ timeout, checkEvery, deviceCollectives \}/);
    // false, and absent outside an MPI launch: one process, whatever the settings would be.
    expect(openWorld('options.distributed', false)).toBeUndefined();
    expect(openWorld('options.distributed', undefined)).toBeUndefined();
  });
});

describe('the GPU of a rank', () => {
  const mpi = (local: Record<string, string>) => ({ OMPI_COMM_WORLD_SIZE: '8', ...local });

  it('reads the local rank from the launchers, the first one set winning', () => {
    expect(localRank({ OMPI_COMM_WORLD_LOCAL_RANK: '3' })).toBe(3);
    expect(localRank({ MPI_LOCALRANKID: '2' })).toBe(2);
    expect(localRank({ MV2_COMM_WORLD_LOCAL_RANK: '1' })).toBe(1);
    expect(localRank({ SLURM_LOCALID: '5' })).toBe(5);
    expect(localRank({ PALS_LOCAL_RANKID: '4' })).toBe(4);
    expect(localRank({ PMI_LOCAL_RANK: '6' })).toBe(6);
    expect(localRank({ OMPI_COMM_WORLD_LOCAL_RANK: '1', SLURM_LOCALID: '7' })).toBe(1);
    expect(localRank({ OMPI_COMM_WORLD_LOCAL_RANK: 'x', SLURM_LOCALID: '7' })).toBe(7);
    expect(localRank({ SLURM_LOCALID: '-1' })).toBeUndefined();
    expect(localRank({})).toBeUndefined();
  });

  it('spreads the ranks of a host over its GPUs, and takes GPU 0 outside a launch', () => {
    expect([0, 1, 2, 3, 4, 5].map((r) => defaultGpu(4, mpi({ OMPI_COMM_WORLD_LOCAL_RANK: String(r) })))).toEqual([
      0, 1, 2, 3, 0, 1,
    ]);
    expect(defaultGpu(2, mpi({ SLURM_LOCALID: '3' }))).toBe(1);
    expect(defaultGpu(4, mpi({}))).toBe(0);
    expect(defaultGpu(0, mpi({ OMPI_COMM_WORLD_LOCAL_RANK: '3' }))).toBe(0);
    // One process (a world of one is no launch), even with a local rank in the environment.
    expect(defaultGpu(4, { OMPI_COMM_WORLD_SIZE: '1', OMPI_COMM_WORLD_LOCAL_RANK: '3' })).toBe(0);
    expect(defaultGpu(4, { SLURM_LOCALID: '3' })).toBe(0);
  });

  it('VelocityNet.create checks options.gpu', () => {
    const create = (gpu: unknown) => () =>
      VelocityNet.create({ dataDim: 2, width: 8, depth: 1 }, { device: 'auto', gpu } as never);
    expect(create(-1)).toThrow(/options\.gpu must be an integer in \[0, /);
    expect(create(0.5)).toThrow(RangeError);
    expect(create('1')).toThrow(TypeError);
    const count = backendInfo().deviceCount;
    if (count > 0) expect(create(count)).toThrow(`options.gpu must be below the ${count} CUDA device(s) present`);
    // On the CPU the option is not used.
    expect(VelocityNet.create({ dataDim: 2, width: 8, depth: 1 }, { device: 'cpu', gpu: 3 }).device).toBe('cpu');
  });
});

describe('NCCL', () => {
  it('the addon links neither NCCL nor MPI', () => {
    const r = spawnSync('ldd', ['build/Release/diffusion_nft.node'], { encoding: 'utf8' });
    expect(r.status, `ldd failed: ${r.error?.message ?? r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/libc\.so/);
    expect(r.stdout).not.toMatch(/nccl|mpi/i);
  });

  it('a missing libnccl.so.2 is a BackendError naming it and DNFT_NCCL_LIBRARY (a CUDA build), or the build', () => {
    const script =
      "import { native } from './dist/lib/core/native.js';" +
      'try { native().ncclVersion(); console.log("loaded"); } catch (e) { console.log(e.code + ": " + e.message); }';
    const r = spawnSync('node', ['--input-type=module', '-e', script], {
      env: { ...process.env, DNFT_NCCL_LIBRARY: '/nonexistent/libnccl.so.2' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    if (backendInfo().compiledWithCuda) {
      expect(r.stdout).toContain('DNFT_BACKEND: cannot load NCCL (/nonexistent/libnccl.so.2)');
      expect(r.stdout).toContain('DNFT_NCCL_LIBRARY');
      expect(r.stdout).toContain('pip install nvidia-nccl');
    } else {
      expect(r.stdout).toContain('DNFT_BACKEND: NCCL needs a CUDA build');
    }
  });
});
