// The rollout of the trainers that keep only the clean samples (DiffusionNFT, AWM, DGPO): its solver and the options
// of the stochastic ones, once for the three.
import type { Rule } from '../options/schema.js';
import type { SaSolverConfig, SaSolverOptions } from '../sampling/sa-solver.js';
import { SDE_A } from '../sampling/sde.js';
import { resolveSaSolver, type SolverName } from '../sampling/solvers.js';

/** The rollout options of a clean-sample trainer. */
export interface CleanRolloutOptions {
  /**
   * Rollout solver (default 'dpm2', deterministic); 'sde': FlowGRPO's SDE (docs/algorithms.md §2.7); 'sa-solver':
   * SA-Solver, AWM's sampler (§2.8).
   */
  solver?: SolverName | 'sde';
  /** Noise level a of the 'sde' rollouts (0.7, FlowGRPO's). */
  sdeA?: number;
  /** Options of the 'sa-solver' rollouts (default: AWM's); only with that solver. */
  saSolver?: SaSolverOptions;
}

/** The option table of the rollout. */
export const CLEAN_ROLLOUT_SCHEMA = {
  solver: { type: 'enum', values: ['euler', 'heun', 'dpm2', 'sde', 'sa-solver'], default: 'dpm2' },
  sdeA: SDE_A,
  saSolver: { type: 'value' },
} as const satisfies Record<keyof CleanRolloutOptions, Rule>;

/** A resolved rollout: the solver and the options it reads. */
export interface CleanRollout {
  solver: SolverName | 'sde';
  sdeA: number;
  saSolver?: SaSolverConfig;
}

/** The rollout of resolved options; saSolver with another solver is an error. */
export function cleanRollout(opts: { solver: SolverName | 'sde'; sdeA: number; saSolver?: unknown }): CleanRollout {
  if (opts.saSolver !== undefined && opts.solver !== 'sa-solver') {
    throw new TypeError("options.saSolver applies to solver: 'sa-solver' only");
  }
  if (opts.solver !== 'sa-solver') return { solver: opts.solver, sdeA: opts.sdeA };
  return { solver: opts.solver, sdeA: opts.sdeA, saSolver: resolveSaSolver(opts.saSolver, 'options.saSolver') };
}

/**
 * What of the rollout a resume must match: the solver and the options it reads (sdeA only for 'sde', so older
 * checkpoints resume).
 */
export function rolloutFingerprint(r: CleanRollout): Record<string, unknown> {
  if (r.solver === 'sde') return { solver: r.solver, sdeA: r.sdeA };
  if (r.saSolver) return { solver: r.solver, saSolver: { ...r.saSolver, tauInterval: [...r.saSolver.tauInterval] } };
  return { solver: r.solver };
}
