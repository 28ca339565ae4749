// Scores of a generated image for its prompt: GenEval's strict success (0/1) and a partial-credit reward for
// training that extra objects and junk push towards 0, so blank, noise and "everything everywhere" images get
// nothing.
import type { Detection } from './detector.js';
import { type ObjectSpec, related, type ShapesPrompt } from './prompts.js';

/** Strict success and reward of one image. */
export interface ImageScore {
  /** GenEval's strict success: exactly the objects asked for, in their relation, and nothing else. */
  strict: boolean;
  /** The partial credit in [0, 1]: matching objects, half for a right shape in a wrong colour, less for extras. */
  reward: number;
}

// A detected relation needs the centroids this far apart (pixels) along its axis.
const RELATION_MARGIN = 1;

const matches = (d: Detection, spec: ObjectSpec) =>
  d.shape === spec.shape && (spec.colour === undefined || d.colour === spec.colour);

/** Scores one image's detections against the prompt it was generated for. */
export function scoreDetections(prompt: ShapesPrompt, detections: readonly Detection[]): ImageScore {
  const objects = detections.filter((d) => d.shape !== null);
  const junk = detections.length - objects.length;
  const wanted = prompt.objects.reduce((s, o) => s + o.count, 0);
  // Per requested object kind: exact matches, plus half credit for the right shape in the wrong colour.
  let credit = 0;
  let exact = true;
  for (const spec of prompt.objects) {
    const found = objects.filter((d) => matches(d, spec)).length;
    const shapeOnly = objects.filter((d) => d.shape === spec.shape).length - found;
    credit += Math.min(spec.count, found + 0.5 * Math.max(0, shapeOnly)) / spec.count;
    exact &&= found === spec.count;
  }
  credit /= prompt.objects.length;
  let relation = true;
  if (prompt.relation !== undefined) {
    const [a, b] = prompt.objects.map((spec) => objects.find((d) => matches(d, spec)));
    relation =
      a !== undefined && b !== undefined && related([a.cx, a.cy], [b.cx, b.cy], prompt.relation, RELATION_MARGIN);
    credit = (2 * credit + (relation ? 1 : 0)) / 3;
  }
  const extras = Math.max(0, objects.length - wanted) + junk;
  const reward = credit * (wanted / (wanted + extras)) ** 2;
  return { strict: exact && relation && objects.length === wanted && junk === 0, reward };
}
