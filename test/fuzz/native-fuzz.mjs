// Native-call fuzzer: every function of the addon's binding (the module functions and every Model method) called
// with random argument types and counts, typed arrays of random kinds and lengths, NaN/Inf, huge and negative
// integers and odd option objects, in child processes. Any JS exception or rejection is fine; a crash or a hang is
// a finding.
//   node test/fuzz/native-fuzz.mjs [--inputs N] [--children C] [--seed S] [--out DIR]
// A tenth of the model calls go to a released model, whose handle must be refused, not dereferenced.
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { childLoop, fuzzArgs, pick, rng, runFuzz } from './driver.mjs';

const FUNCTIONS = [
  'backendInfo',
  'setThreads',
  'limits',
  'paramLayout',
  'loraLayout',
  'loraModules',
  'philox4x32',
  'randomFill',
  'interpolate',
  'nftLoss',
  'awmLoss',
  'dgpoLoss',
  'sdeStep',
  'sdeCoefficients',
  'sdeLogp',
  'grpoLoss',
  'guardLoss',
];
const METHODS = [
  'layout',
  'config',
  'paramCount',
  'step',
  'device',
  'precision',
  'getParams',
  'setParams',
  'hasParams',
  'copyParams',
  'blendParams',
  'hasOptimizerState',
  'getOptimizerState',
  'setOptimizerState',
  'resetOptimizer',
  'velocity',
  'forwardBackward',
  'flowMatchingStep',
  'sample',
  'nftStep',
  'grpoStep',
  'awmStep',
  'dgpoStep',
  'enableLora',
  'lora',
  'getAdapter',
  'setAdapter',
  'mergeLora',
  'release',
];
const NUMBERS = [0, 1, 2, 3, 4, -1, 0.5, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 40), 1e300, -1e300];
const SPECIAL = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0];
const STRINGS = [
  'theta',
  'old',
  'ref',
  'ema',
  'cpu',
  'cuda',
  'auto',
  'normal',
  'uniform',
  'euler',
  'sde',
  'dpm2',
  'gaussian',
  'kaiming',
  'flow-grpo',
  'cps',
  '',
];

/** A random value for one argument, given the model (for plausible lengths). */
function value(r, model, depth = 0) {
  const n = model.paramCount;
  const lengths = [0, 1, 2, 3, 4, 8, 16, 64, n, 2 * n, 4 * 3, 2 * 2];
  const kind = Math.floor(r() * 10);
  if (kind === 0) return pick(r, [undefined, null, true, false, {}, [], () => 1, 5n, Symbol('s')]);
  if (kind === 1) return pick(r, NUMBERS);
  if (kind === 2) return pick(r, SPECIAL);
  if (kind === 3) return pick(r, STRINGS);
  if (kind <= 6) {
    const Type = pick(r, [Float32Array, Float32Array, Int32Array, Float64Array, Uint32Array, Uint8Array]);
    const array = new Type(pick(r, lengths));
    for (let i = 0; i < array.length; i++) {
      const v = r() < 0.05 ? pick(r, [...SPECIAL, 1e30, -1e30]) : r() * 4 - 1;
      array[i] = Type === Float32Array || Type === Float64Array ? v : Math.floor(v * 3);
    }
    return array;
  }
  if (kind === 7 && depth === 0) {
    // An options object: the fields the binding reads, with random values.
    const fields = ['solver', 'grid', 'cfgScale', 'seed', 'firstSample', 'chunk', 'sdeA', 'logpSum', 'microBatch'];
    const more = ['times', 'timesPerSample', 'beta', 'klCoef', 'lr', 'eps', 'trainSteps', 'clipRange', 'condDropout'];
    const methods = ['strata', 'weighting', 'ghuberPower', 'emaCoef', 'groups', 'groupSize', 'betaDpo', 'emaRef'];
    const arch = ['arch', 'dataDim', 'width', 'depth', 'heads', 'patch', 'imageSize', 'channels', 'vocabSize'];
    const lora = ['rank', 'alpha', 'init', 'targets'];
    const likelihood = ['sde', 'windowLo', 'windowHi', 'tailSolver', 'firstStep', 'guard'];
    const object = {};
    for (const field of [...fields, ...more, ...methods, ...arch, ...lora, ...likelihood]) {
      if (r() >= 0.3) continue;
      if (field === 'targets') object[field] = pick(r, [['fc1'], ['fc1', 'ada'], ['fc1', 'fc1'], [], [1], 'fc1']);
      else object[field] = field === 'grid' || field === 'times' || field === 'strata' ? grid(r) : value(r, model, 1);
    }
    return object;
  }
  if (kind === 8) return grid(r);
  return model.handle;
}

/** A time grid: mostly well-formed (1 down to 0), sometimes not. */
function grid(r) {
  const steps = pick(r, [0, 1, 2, 3, 5]);
  const g = new Float64Array(steps + 1).map((_, i) => 1 - i / Math.max(1, steps));
  if (r() < 0.3) g[Math.floor(r() * g.length)] = pick(r, [...SPECIAL, 2, -1]);
  return g;
}

/** Well-formed arguments of the calls that do real work (B rows of the model's D; L = 1), to mutate one of. */
function plausible(r, name, model) {
  const B = pick(r, [1, 2, 3]);
  const D = model.dataDim;
  const f = (count) => new Float32Array(count).map(() => r() * 2 - 1);
  const tokens = new Int32Array(B).map(() => Math.floor(r() * 3));
  const t = new Float32Array(B).map(() => r());
  const g = new Float64Array([1, 0.5, 0]);
  const optimizer = { lr: 1e-3, seed: 1, microBatch: 0 };
  const table = {
    velocity: [f(B * D), t, tokens, B, 'theta'],
    forwardBackward: [f(B * D), t, tokens, f(B * D), B],
    flowMatchingStep: [f(B * D), tokens, B, optimizer],
    sample: [
      null,
      tokens,
      B,
      {
        solver: pick(r, ['euler', 'heun', 'dpm2', 'sde']),
        grid: g,
        seed: 1,
        chunk: 2,
        cfgScale: 1,
        cfgTMin: 0,
        cfgTMax: 1,
        firstSample: 0,
        sdeA: 0.7,
        logpSum: false,
        sde: pick(r, ['flow-grpo', 'cps']),
        windowLo: pick(r, [0, 1, 2, -1]),
        windowHi: pick(r, [1, 2, 3, -1]),
        tailSolver: pick(r, ['euler', 'dpm2', 'heun']),
      },
      r() < 0.5,
      'theta',
      r() < 0.5,
    ],
    nftStep: [f(B * D), tokens, new Float32Array(B).fill(0.5), B, { ...optimizer, timesPerSample: 1 }],
    grpoStep: [
      f(3 * B * D),
      tokens,
      f(B),
      f(2 * B),
      B,
      {
        ...optimizer,
        grid: g,
        trainSteps: pick(r, [1, 2]),
        firstStep: new Int32Array(pick(r, [0, B])).map(() => pick(r, [0, 1, 2, -1])),
        guard: r() < 0.5,
        sde: pick(r, ['flow-grpo', 'cps']),
        sdeA: 0.7,
        clipRange: 0.2,
        klCoef: 0,
        logpSum: false,
        cfgScale: 1,
        cfgTMin: 0,
        cfgTMax: 1,
      },
      r() < 0.5 ? f(2 * B * D) : null,
    ],
    guardLoss: [
      f(B * D),
      f(B * D),
      f(B * D),
      f(B * D),
      f(5 * B),
      f(B),
      f(B),
      D,
      {
        clipRange: 0.1,
        klCoef: 0,
        logpSum: false,
        sde: 'flow-grpo',
      },
    ],
    setOptimizerState: [f(model.paramCount), new Float32Array(model.paramCount), 3],
    setParams: [f(model.paramCount), pick(r, ['theta', 'old', 'ema'])],
    interpolate: [f(B * 2), t, 2, 1, 0],
    randomFill: [new Float32Array(B * 4), 1, 0, 0, pick(r, ['normal', 'uniform'])],
    sdeLogp: [f(B * 2), f(B * 2), 0.5, 2, true],
  };
  return table[name];
}

/** One call from input number i: which function, which arguments. */
function call(i, seed, models) {
  const r = rng(seed + i);
  const onModel = r() < 0.6;
  const model = pick(r, models);
  const name = onModel ? pick(r, METHODS) : pick(r, FUNCTIONS);
  const template = r() < 0.6 ? plausible(r, name, model) : undefined;
  let args;
  if (template !== undefined) {
    args = [...template];
    for (let k = Math.floor(r() * 3); k > 0; k--) args[Math.floor(r() * args.length)] = value(r, model);
  } else {
    args = Array.from({ length: Math.floor(r() * 9) }, () => value(r, model));
  }
  if (onModel) {
    const target = r() < 0.1 ? models.released : model.handle;
    return { name: `Model.${name}`, target, args };
  }
  // setThreads with large counts starts that many threads: keep it to small valid or invalid values.
  if (name === 'setThreads' && typeof args[0] === 'number' && args[0] > 4 && args[0] <= 1024) args[0] = 2;
  return { name, args };
}

async function child(seed, from, to) {
  const require = createRequire(import.meta.url);
  const addon = process.env.DNFT_ADDON
    ? require(process.env.DNFT_ADDON)
    : require('node-gyp-build')(fileURLToPath(new URL('../..', import.meta.url)));
  // The binding takes complete configs (the library fills the defaults in).
  const { resolveNetConfig } = await import('../../dist/lib/options/net-config.js');
  const make = (config) => {
    const handle = new addon.Model(resolveNetConfig(config), 1, 'cpu', 'fp32');
    return { handle, paramCount: handle.paramCount(), dataDim: config.dataDim };
  };
  let models;
  const fresh = () => {
    models = [
      make({ dataDim: 2, width: 8, depth: 1 }),
      make({ arch: 'dit', dataDim: 16, imageSize: 4, channels: 1, patch: 2, width: 8, heads: 2, depth: 1 }),
    ];
    const gone = make({ dataDim: 2, width: 4, depth: 1 });
    gone.handle.release();
    models.released = gone.handle;
  };
  fresh();
  await childLoop(from, to, async (i) => {
    const { name, target, args } = call(i, seed, models);
    let outcome = `${name}: ok`;
    try {
      const method = name.startsWith('Model.') ? target[name.slice(6)] : addon[name];
      const result = method.apply(target, args);
      if (result instanceof Promise) await result;
    } catch (error) {
      outcome = `${name}: ${error?.constructor?.name}`;
    }
    // A released model stays released: make new ones for the next calls.
    if (name === 'Model.release') fresh();
    return outcome;
  });
}

async function main() {
  const values = fuzzArgs('native');
  const { seed } = values;
  const expected = new Set();
  const { report, clean } = await runFuzz({
    script: fileURLToPath(import.meta.url),
    childArgs: (from, to) => ['--child', String(seed), String(from), String(to)],
    inputs: Number(values.inputs),
    children: Number(values.children),
    batch: 1000,
    msPerInput: 1000,
    // Every outcome that is a return or a JS exception is fine; only crashes and hangs are findings.
    expected: {
      includes: (outcome) => {
        expected.add(outcome.split(': ')[1]);
        return true;
      },
    },
    save: (i, path) => writeFileSync(`${path}.json`, JSON.stringify({ seed, input: i })),
    out: values.out,
  });
  const { outcomes: _all, ...rest } = report;
  console.log(JSON.stringify({ fuzzer: 'native', seed, ...rest, results: [...expected] }));
  process.exitCode = clean ? 0 : 1;
}

if (process.argv[2] === '--child') {
  const [seed, from, to] = process.argv.slice(3);
  await child(Number(seed), Number(from), Number(to));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
