// The import rules of lib/ (docs/architecture.md, "The layers of lib/"), checked by `npm run lint` and
// scripts/dev.sh test: no import circle, and each layer imports only from the layers below it. Type-only imports
// count too (tsPreCompilationDeps), since a circle of types is still a circle for a reader.

/** The layers of lib/, bottom to top: a folder each, then the public API (lib/index.ts) and the CLI. */
const LAYERS = [
  ['options', '^lib/options/'],
  ['core', '^lib/core/'],
  ['images', '^lib/images/'],
  ['model', '^lib/model/'],
  ['sampling', '^lib/sampling/'],
  ['rl', '^lib/rl/'],
  ['metrics', '^lib/metrics/'],
  ['training', '^lib/training/'],
  ['data', '^lib/data/'],
  ['tasks', '^lib/tasks/'],
  ['jobs', '^lib/jobs/'],
  ['dashboard', '^lib/dashboard/'],
  ['api', '^lib/index[.]ts$'],
  ['cli', '^lib/cli([.]ts$|/)'],
];

const upward = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `${name}-imports-above`,
  comment: `lib/ layer '${name}' may import only from the layers below it (${LAYERS.slice(0, i).map(([n]) => n).join(', ') || 'none'})`,
  severity: 'error',
  from: { path },
  to: { path: LAYERS.slice(i + 1).map(([, p]) => p) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import circle: move the shared piece down to the layer where it belongs',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    {
      name: 'outside-the-layers',
      comment: 'every file of lib/ lives in a layer folder (lib/index.ts and lib/cli.ts aside)',
      severity: 'error',
      from: { path: '^lib/[^/]+$', pathNot: '^lib/(index|cli)[.]ts$' },
      to: {},
    },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['es6'],
  },
};
