// The arithmetic of a sweep's report, over the seeds of each run: the mean curve, the time each seed takes to reach a
// threshold, and the speed-up of one run over another with its spread over the pairs of seeds.

/** One evaluated point of one seed, in one view (a metric's value at an epoch and training second). */
export interface SeedPoint {
  epoch: number;
  seconds: number;
  value: number;
}

/** A point of the mean curve: the mean over the seeds evaluated at this epoch, and each seed's value. */
export interface MeanPoint {
  epoch: number;
  seconds: number;
  value: number;
  /** Each seed's value, in the order of the seeds; all seeds have one (epochs not reached by all are left out). */
  values: number[];
}

export const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** The first point at the highest value, or undefined when there is none. */
function firstHighest<P extends { value: number }>(points: readonly P[]): P | undefined {
  return points.reduce<P | undefined>((m, p) => (m === undefined || p.value > m.value ? p : m), undefined);
}

/** The mean curve over seeds: at each epoch every seed was evaluated at, the mean value and the mean seconds. */
export function meanCurve(seeds: readonly (readonly SeedPoint[])[]): MeanPoint[] {
  if (seeds.length === 0) return [];
  const byEpoch = seeds.map((points) => new Map(points.map((p) => [p.epoch, p])));
  const epochs = [...(byEpoch[0] as Map<number, SeedPoint>).keys()].filter((e) => byEpoch.every((m) => m.has(e)));
  return epochs
    .sort((a, b) => a - b)
    .map((epoch) => {
      const at = byEpoch.map((m) => m.get(epoch) as SeedPoint);
      return {
        epoch,
        seconds: mean(at.map((p) => p.seconds)),
        value: mean(at.map((p) => p.value)),
        values: at.map((p) => p.value),
      };
    });
}

/** Where a seed first reached a threshold: the first evaluation at or above it, or null when none was. */
export interface Reach {
  epoch: number;
  seconds: number;
}

export function timeToThreshold(points: readonly SeedPoint[], threshold: number): Reach | null {
  const p = points.find((q) => Number.isFinite(q.value) && q.value >= threshold);
  return p === undefined ? null : { epoch: p.epoch, seconds: p.seconds };
}

/** A seed's best evaluation (the first at its highest value) and its last; null when it has none. */
export interface SeedEnds {
  best: SeedPoint;
  final: SeedPoint;
}

export function seedEnds(points: readonly SeedPoint[]): SeedEnds | null {
  const best = firstHighest(points);
  const final = points.at(-1);
  return best === undefined || final === undefined ? null : { best, final };
}

/**
 * The speed-up of run a over run b at a threshold: b's time over a's. `ratio` divides the mean times, `min`/`max`
 * span the ratios of every pair (seed of a, seed of b). When some seed of b never reached the threshold, its whole
 * training time (`bLimits`, per seed) stands in for its time and the figures are lower bounds (`bound` '>'); when a
 * seed of a never did, there is no figure (`ratio` null) — a is not faster there. When every seed of a run met the
 * threshold at its first evaluation, before any training, there is no figure either (`untrained` names that run).
 */
export interface Speedup {
  ratio: number | null;
  min: number | null;
  max: number | null;
  bound: '=' | '>';
  untrained?: 'a' | 'b';
}

export function speedup(
  a: readonly (Reach | null)[],
  b: readonly (Reach | null)[],
  bLimits: readonly number[],
): Speedup {
  const none = { ratio: null, min: null, max: null, bound: '=' } as const;
  if (a.length === 0 || b.length === 0 || a.some((r) => r === null)) return none;
  const untrained = (reaches: readonly (Reach | null)[]) => reaches.every((r) => r?.epoch === 0);
  if (untrained(b)) return { ...none, untrained: 'b' };
  if (untrained(a)) return { ...none, untrained: 'a' };
  const ta = a.map((r) => Math.max((r as Reach).seconds, 1e-9));
  const tb = b.map((r, j) => r?.seconds ?? (bLimits[j] as number));
  const ratios = ta.flatMap((x) => tb.map((y) => y / x));
  return {
    ratio: mean(tb) / mean(ta),
    min: Math.min(...ratios),
    max: Math.max(...ratios),
    bound: b.some((r) => r === null) ? '>' : '=',
  };
}

/**
 * The speed-up of run a over run b to b's best, the measure the methods' papers quote ("reaches the baseline's score
 * N× sooner"): `level` is the highest value of b's mean curve, reached at `bSeconds`; `aSeconds` is when a's mean
 * curve first reaches it. When it never does, a's whole mean training time (`aLimit`) stands in and the ratio is an
 * upper bound ('<'). There is no figure (`none` says why) when b's mean curve never rises above its first point or
 * a's first point already meets b's best.
 */
export type BestSpeedup =
  | { level: number; bSeconds: number; aSeconds: number | null; ratio: number; bound: '=' | '<' }
  | { none: 'b never rises above its start' | "a's start meets it" };

export function speedupToBest(a: readonly MeanPoint[], b: readonly MeanPoint[], aLimit: number): BestSpeedup {
  const best = firstHighest(b);
  if (best === undefined || best === b[0]) return { none: 'b never rises above its start' };
  const reached = a.find((p) => p.value >= best.value);
  if (reached !== undefined && reached === a[0]) return { none: "a's start meets it" };
  const aSeconds = reached?.seconds ?? null;
  return {
    level: best.value,
    bSeconds: best.seconds,
    aSeconds,
    ratio: best.seconds / Math.max(aSeconds ?? aLimit, 1e-9),
    bound: aSeconds === null ? '<' : '=',
  };
}
