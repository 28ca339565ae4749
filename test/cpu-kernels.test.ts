// The CPU kernel path (native/cpu/simd.h): reported by backendInfo(), chosen by DNFT_CPU_KERNELS, and the measured
// FMA peak the bench judges GEMM rates against (native/cpu/fma_peak.h).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { native } from '../lib/core/native.js';
import { backendInfo } from '../lib/index.js';

const PATHS = ['generic', 'avx2', 'avx512'] as const;

/** backendInfo() of a fresh process with DNFT_CPU_KERNELS set to `kernels`, and what it wrote to stderr. */
function childInfo(kernels: string): { info: { cpuKernels: string; sgemmKernel: string }; stderr: string } {
  const script =
    "const a = require('./build/Release/diffusion_nft.node'); const i = a.backendInfo();" +
    'console.log(JSON.stringify({ cpuKernels: i.cpuKernels, sgemmKernel: i.sgemmKernel }));';
  const r = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, DNFT_CPU_KERNELS: kernels },
    encoding: 'utf8',
  });
  expect(r.status).toBe(0);
  return { info: JSON.parse(r.stdout), stderr: r.stderr };
}

describe('CPU kernel paths', () => {
  it('backendInfo names the path in use and its GEMM micro-kernel', () => {
    const info = backendInfo();
    expect(PATHS).toContain(info.cpuKernels);
    expect(info.sgemmKernel.startsWith(info.cpuKernels)).toBe(true);
  });

  it('DNFT_CPU_KERNELS=generic picks the portable loops; an unknown name warns and keeps the widest path', () => {
    const generic = childInfo('generic');
    expect(generic.info).toEqual({ cpuKernels: 'generic', sgemmKernel: 'generic-6x16' });
    expect(generic.stderr).toBe('');
    const widest = childInfo('');
    const unknown = childInfo('avx9');
    expect(unknown.info).toEqual(widest.info);
    expect(unknown.stderr).toContain('DNFT_CPU_KERNELS=avx9 is none of generic, avx2, avx512');
  });

  it('the FMA peak is measured for the vector paths the CPU has, and refused for generic', () => {
    const widest = childInfo('').info.cpuKernels;
    for (const kernels of ['avx2', 'avx512'] as const) {
      if (PATHS.indexOf(kernels) > PATHS.indexOf(widest as (typeof PATHS)[number])) {
        expect(() => native().fmaPeak(kernels, 1, 0.01)).toThrow(`lacks the ${kernels} instructions`);
        continue;
      }
      const flops = native().fmaPeak(kernels, 1, 0.01);
      expect(flops).toBeGreaterThan(1e9);
      expect(Number.isFinite(flops)).toBe(true);
    }
    expect(() => native().fmaPeak('generic' as 'avx2', 1, 0.01)).toThrow('the generic path has no vector FMA');
  });
});
