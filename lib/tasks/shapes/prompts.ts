// Prompts of the `shapes` world in GenEval's six categories, their slot tokens, the train/test split, and scenes
// that satisfy a prompt (the pre-training data).
import type { Prompt } from '../../training/common.js';
import {
  COLOURS,
  type Colour,
  centre,
  type Draws,
  IMAGE_SIZE,
  type SceneObject,
  SHAPES,
  type Shape,
  SIZES,
  separated,
} from './world.js';

/** GenEval's six prompt categories. */
export const CATEGORIES = ['single', 'two', 'counting', 'colours', 'position', 'attribution'] as const;
/** One of the CATEGORIES. */
export type Category = (typeof CATEGORIES)[number];
/** The spatial relations of 'position' prompts, of the first object to the second. */
export const RELATIONS = ['left of', 'right of', 'above', 'below'] as const;
/** One of the RELATIONS. */
export type Relation = (typeof RELATIONS)[number];

/** What a prompt asks for: `count` objects of a shape, of a colour when given. */
export interface ObjectSpec {
  /** The shape asked for. */
  shape: Shape;
  /** The colour asked for; absent: any. */
  colour?: Colour;
  /** How many. */
  count: number;
}

/** A shapes prompt: its tokens, text, category, the objects it asks for and, for 'position', their relation. */
export interface ShapesPrompt extends Prompt {
  /** The prompt in words, e.g. 'a red circle and a blue square'. */
  readonly text: string;
  /** Its GenEval category. */
  readonly category: Category;
  /** The objects it asks for: one, or two. */
  readonly objects: readonly ObjectSpec[];
  /** For 'position' prompts: where the first object is relative to the second. */
  readonly relation?: Relation;
}

// Vocabulary: 0 is the null/pad token. Slots: [count₁, colour₁, shape₁, link, count₂, colour₂, shape₂, pad].
const WORDS = ['<null>', ...SHAPES, ...COLOURS, 'one', 'two', 'three', 'four', 'and', ...RELATIONS] as const;
/** Condition slots of a shapes prompt (config M has 8). */
export const SLOTS = 8;
/** Size of the token vocabulary (fits config M's 32). */
export const VOCAB = WORDS.length;
const token = (word: string) => {
  const id = (WORDS as readonly string[]).indexOf(word);
  if (id < 0) throw new Error(`shapes: no token for '${word}'`);
  return id;
};
const NUMBERS = ['zero', 'one', 'two', 'three', 'four'];

function tokens(objects: readonly ObjectSpec[], link?: string): number[] {
  const slots = new Array<number>(SLOTS).fill(0);
  objects.forEach((o, i) => {
    slots[4 * i] = token(NUMBERS[o.count] as string);
    slots[4 * i + 1] = o.colour === undefined ? 0 : token(o.colour);
    slots[4 * i + 2] = token(o.shape);
  });
  if (link !== undefined) slots[3] = token(link);
  return slots;
}

function phrase(o: ObjectSpec): string {
  const noun = o.count === 1 ? o.shape : `${o.shape}s`;
  const article = o.count === 1 ? 'a' : (NUMBERS[o.count] as string);
  return [article, o.colour, noun].filter(Boolean).join(' ');
}

function make(category: Category, objects: ObjectSpec[], relation?: Relation): ShapesPrompt {
  const link = relation ?? (objects.length === 2 ? 'and' : undefined);
  const text = objects.map(phrase).join(` ${link ?? 'and'} `);
  return Object.freeze({
    tokens: Object.freeze(tokens(objects, link)),
    text,
    category,
    objects: Object.freeze(objects.map((o) => Object.freeze(o))),
    ...(relation === undefined ? {} : { relation }),
  });
}

function allPrompts(): ShapesPrompt[] {
  const list: ShapesPrompt[] = [];
  for (const shape of SHAPES) list.push(make('single', [{ shape, count: 1 }]));
  SHAPES.forEach((a, i) => {
    for (const b of SHAPES.slice(i + 1))
      list.push(
        make('two', [
          { shape: a, count: 1 },
          { shape: b, count: 1 },
        ]),
      );
  });
  for (const shape of SHAPES) for (const count of [2, 3, 4]) list.push(make('counting', [{ shape, count }]));
  for (const colour of COLOURS) for (const shape of SHAPES) list.push(make('colours', [{ shape, colour, count: 1 }]));
  for (const a of SHAPES) {
    for (const b of SHAPES) {
      if (a === b) continue;
      for (const relation of RELATIONS)
        list.push(
          make(
            'position',
            [
              { shape: a, count: 1 },
              { shape: b, count: 1 },
            ],
            relation,
          ),
        );
    }
  }
  COLOURS.forEach((ca, i) => {
    for (const cb of COLOURS.slice(i + 1)) {
      for (const a of SHAPES) {
        for (const b of SHAPES) {
          if (a !== b)
            list.push(
              make('attribution', [
                { shape: a, colour: ca, count: 1 },
                { shape: b, colour: cb, count: 1 },
              ]),
            );
        }
      }
    }
  });
  return list;
}

// Compositions never seen in training: three colour–shape pairs, two ordered shape pairs in a relation, and two
// counts. Single-object and two-object prompts (3 each) are in both sets.
const HELD_PAIRS = ['red triangle', 'blue square', 'green circle'];
const HELD_RELATIONS = ['triangle:circle', 'circle:square'];
const HELD_COUNTS = ['four triangles', 'three squares'];

function heldOut(p: ShapesPrompt): boolean {
  const pairs = p.objects.map((o) => `${o.colour} ${o.shape}`);
  if (pairs.some((pair) => HELD_PAIRS.includes(pair))) return true;
  if (p.category === 'position') return HELD_RELATIONS.includes(p.objects.map((o) => o.shape).join(':'));
  return p.category === 'counting' && HELD_COUNTS.includes(p.text);
}

/** Every prompt of the world. */
export const ALL_PROMPTS: readonly ShapesPrompt[] = Object.freeze(allPrompts());
/** Training prompts: all but the held-out compositions. */
export const TRAIN_PROMPTS: readonly ShapesPrompt[] = Object.freeze(
  ALL_PROMPTS.filter((p) => !heldOut(p) || p.category === 'single' || p.category === 'two'),
);
/** Test prompts: the held-out compositions, plus the single- and two-object prompts and a share of the rest. */
export const TEST_PROMPTS: readonly ShapesPrompt[] = Object.freeze(
  ALL_PROMPTS.filter((p, i) => heldOut(p) || p.category === 'single' || p.category === 'two' || i % 4 === 0),
);

// Centres of the first and second object must be this far apart along the relation's axis.
const RELATION_GAP = 3;

/** Whether centre a stands in `relation` to centre b, with a margin of `gap` pixels. */
export function related(a: [number, number], b: [number, number], relation: Relation, gap: number): boolean {
  switch (relation) {
    case 'left of':
      return a[0] + gap <= b[0];
    case 'right of':
      return a[0] >= b[0] + gap;
    case 'above':
      return a[1] + gap <= b[1];
    case 'below':
      return a[1] >= b[1] + gap;
  }
}

/** Random objects (positions, sizes, free colours) that satisfy a prompt, placed apart. */
export function sceneFor(p: ShapesPrompt, draws: Draws): SceneObject[] {
  for (let attempt = 0; attempt < 50; attempt++) {
    const placed: SceneObject[] = [];
    let ok = true;
    for (const spec of p.objects) {
      for (let k = 0; k < spec.count && ok; k++) {
        ok = false;
        for (let tries = 0; tries < 40 && !ok; tries++) {
          const size = draws.pick(SIZES);
          const o: SceneObject = {
            shape: spec.shape,
            colour: spec.colour ?? draws.pick(COLOURS),
            size,
            x: draws.int(IMAGE_SIZE - size + 1),
            y: draws.int(IMAGE_SIZE - size + 1),
          };
          const relationOk =
            p.relation === undefined ||
            placed.length === 0 ||
            related(centre(o), centre(placed[0] as SceneObject), inverse(p.relation), RELATION_GAP);
          if (relationOk && placed.every((q) => separated(o, q))) {
            placed.push(o);
            ok = true;
          }
        }
      }
    }
    if (ok) return placed;
  }
  throw new Error(`shapes: could not place a scene for '${p.text}'`);
}

// The second object is placed relative to the first: B stands in the inverse relation to A.
function inverse(r: Relation): Relation {
  return ({ 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' } as const)[r];
}
