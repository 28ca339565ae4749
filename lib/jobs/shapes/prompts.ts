// Finding the shapes prompts a job names: a prompt by its text (with close matches when there is none), and the
// prompts of the sample grids.
import { editDistance } from '../../options/schema.js';
import * as shapes from '../../tasks/shapes/index.js';

/** The prompt of a text, e.g. "a circle left of a square"; the error lists close matches. */
export function findPrompt(text: string): shapes.ShapesPrompt {
  const wanted = text.trim().toLowerCase().replace(/\s+/g, ' ');
  const found = shapes.ALL_PROMPTS.find((p) => p.text === wanted);
  if (found) return found;
  const close = shapes.ALL_PROMPTS.map((p) => ({ p, distance: editDistance(p.text, wanted) }))
    .sort((a, b) => a.distance - b.distance)
    .slice(0, 3)
    .map(({ p }) => `'${p.text}'`);
  throw new RangeError(`no shapes prompt '${text}'; close ones: ${close.join(', ')}`);
}

/** The prompts of the sample grids: the first test prompt of each category and two unseen compositions. */
export function gridPrompts(): shapes.ShapesPrompt[] {
  const picked = shapes.CATEGORIES.map((c) => shapes.TEST_PROMPTS.find((p) => p.category === c) as shapes.ShapesPrompt);
  const unseen = shapes.TEST_PROMPTS.filter((p) => !shapes.TRAIN_PROMPTS.includes(p) && !picked.includes(p));
  return [...picked, ...unseen.slice(0, 2)];
}
