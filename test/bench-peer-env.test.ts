// The bench's PyTorch peer runs with OpenBLAS free to pick its kernel, and says which (bench/peer-env.ts).
import { describe, expect, it } from 'vitest';
import { openblasCore, peerEnv } from '../bench/peer-env.js';

describe('the PyTorch peer environment', () => {
  it('drops the variables that hold OpenBLAS back, for the peer only, and asks it to name its kernel', () => {
    process.env.OPENBLAS_CORETYPE = 'Haswell';
    process.env.OPENBLAS_L2_SIZE = '512';
    try {
      const env = peerEnv(3);
      expect(env.OPENBLAS_CORETYPE).toBeUndefined();
      expect(env.OPENBLAS_L2_SIZE).toBeUndefined();
      expect(env.OPENBLAS_VERBOSE).toBe('2');
      expect(env.OMP_NUM_THREADS).toBe('3');
      expect(env.PATH).toBe(process.env.PATH);
      // Our side's environment is untouched.
      expect(process.env.OPENBLAS_CORETYPE).toBe('Haswell');
    } finally {
      delete process.env.OPENBLAS_CORETYPE;
      delete process.env.OPENBLAS_L2_SIZE;
    }
  });

  it("reads OpenBLAS's kernel from its verbose output", () => {
    expect(openblasCore('some warning\nCore: Cooperlake\n')).toBe('Cooperlake');
    expect(openblasCore('no verbose line\n')).toBeNull();
  });
});
