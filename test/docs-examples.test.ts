// The docs' examples are programs that work: the ```ts blocks of each page below are joined into one program (their
// imports from 'diffusion-nft' merged), type-checked against the package's source (tsc, the repository's settings)
// and run against the build (dist/) under a time limit; a block marked ```ts no-run is type-checked only. The ```sh
// blocks of every doc may name only commands and flags that the CLI's --help lists, and `npm run` scripts that
// package.json has.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, tasks } from '../lib/index.js';

const ROOT = resolve('.');
const PAGES = ['README.md', 'docs/guide.md'];
// What a page's program must print: the README's quick start must learn (DiffusionNFT moves the toy samples onto the
// red modes: about 0.16 of them before).
const LEARNS: Record<string, (output: string) => void> = {
  'README.md': (output) => {
    const red = Number(/on a red mode: ([\d.]+)/.exec(output)?.[1]);
    expect(red, output).toBeGreaterThan(0.8);
  },
};
const RUN_LIMIT_MS = 90_000;

interface Block {
  code: string;
  run: boolean;
}

/** The TypeScript blocks of a page, in order. */
function tsBlocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(?:ts|typescript)([^\n]*)\n([\s\S]*?)^```/gm)].map((m) => ({
    code: m[2] as string,
    run: !(m[1] as string).split(/\s+/).includes('no-run'),
  }));
}

const IMPORT = /^import\s+(type\s+)?\{([^}]*)\}\s+from\s+'([^']+)';?\s*$/gm;

/** The blocks as one module: one import per module specifier (names merged), then every block's body in order. */
function joinBlocks(blocks: readonly Block[]): string {
  const imports = new Map<string, Set<string>>();
  const bodies = blocks.map((b, i) => {
    const body = b.code.replace(IMPORT, (_, type: string | undefined, names: string, from: string) => {
      const set = imports.get(from) ?? new Set<string>();
      for (const name of names.split(',').map((n) => n.trim())) {
        if (name !== '') set.add(type ? `type ${name}` : name);
      }
      imports.set(from, set);
      return '';
    });
    return `// block ${i + 1}\n${body}`;
  });
  const head = [...imports].map(([from, names]) => `import { ${[...names].join(', ')} } from '${from}';`);
  return `${head.join('\n')}\n${bodies.join('\n')}\nexport {};\n`;
}

const work = mkdtempSync(join(tmpdir(), 'dnft-docs-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Type-checks the programs with the repository's compiler options, 'diffusion-nft' resolved to lib/index.ts. */
function typecheck(files: string[]): string {
  const config = {
    extends: join(ROOT, 'tsconfig.json'),
    compilerOptions: {
      noEmit: true,
      rootDir: '/',
      typeRoots: [join(ROOT, 'node_modules', '@types')],
      paths: { 'diffusion-nft': [join(ROOT, 'lib', 'index.ts')] },
    },
    include: [],
    files,
  };
  writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(join(work, 'tsconfig.json'), JSON.stringify(config));
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(work, 'tsconfig.json')], { encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`;
}

/** Runs a program against the build: types stripped, 'diffusion-nft' pointed at dist/lib/index.js. */
function run(name: string, program: string): { status: number | null; output: string; seconds: number } {
  const dir = join(work, `run-${name}`);
  mkdirSync(dir, { recursive: true });
  const js = ts
    .transpileModule(program, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
    .outputText.replace(/from 'diffusion-nft'/g, `from '${pathToFileURL(join(ROOT, 'dist', 'lib', 'index.js'))}'`);
  writeFileSync(join(dir, 'main.mjs'), js);
  const started = performance.now();
  const r = spawnSync(process.execPath, ['main.mjs'], { cwd: dir, encoding: 'utf8', timeout: RUN_LIMIT_MS });
  return { status: r.status, output: `${r.stdout}${r.stderr}`, seconds: (performance.now() - started) / 1000 };
}

const programs = PAGES.map((page) => {
  const blocks = tsBlocks(readFileSync(page, 'utf8'));
  const name = page.replace(/[^\w]+/g, '-');
  return { page, name, blocks, file: join(work, `${name}.ts`), source: joinBlocks(blocks) };
});

describe('the TypeScript examples of the docs', () => {
  it('type-check against the package', () => {
    for (const p of programs) {
      expect(p.blocks.length, `${p.page} has no ts block`).toBeGreaterThan(0);
      writeFileSync(p.file, p.source);
    }
    expect(typecheck(programs.map((p) => p.file))).toBe('');
  });

  for (const p of programs) {
    it(`of ${p.page} run to their end`, () => {
      const runnable = p.blocks.filter((b) => b.run);
      const r = run(p.name, joinBlocks(runnable));
      expect(r.status, r.output).toBe(0);
      expect(r.seconds).toBeLessThan(RUN_LIMIT_MS / 1000);
      LEARNS[p.page]?.(r.output);
    });
  }
});

/** The `npx diffusion-nft ...` and `npm run ...` lines of a page's sh blocks, continuation lines joined. */
function shellLines(markdown: string): string[] {
  return [...markdown.matchAll(/^```(?:sh|bash|shell)[^\n]*\n([\s\S]*?)^```/gm)].flatMap((m) =>
    (m[1] as string)
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.replace(/\s+#.*$/, '').trim()),
  );
}

/** The words of a command line, quotes removed ('a b' is one word). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

const help = (args: string[]) =>
  execFileSync(process.execPath, ['dist/lib/cli.js', ...args, '--help'], { encoding: 'utf8' });

describe('the command lines of the docs', () => {
  const docs = ['README.md', ...readdirSync('docs').flatMap((f) => (f.endsWith('.md') ? [join('docs', f)] : []))];
  const lines = docs.flatMap((doc) => shellLines(readFileSync(doc, 'utf8')).map((line) => ({ doc, line })));
  const commands = new Set([...help([]).matchAll(/^ {2}(\w+) /gm)].map((m) => m[1] as string));
  const scripts = Object.keys(JSON.parse(readFileSync('package.json', 'utf8')).scripts as Record<string, string>);
  const prompts = new Set(tasks.shapes.ALL_PROMPTS.map((p) => p.text));

  it('name existing CLI commands and flags', () => {
    const wrong: string[] = [];
    const helps = new Map<string, string>();
    for (const { doc, line } of lines) {
      const w = words(line);
      const at = w.indexOf('diffusion-nft');
      if (w[0] !== 'npx' || at !== 1) continue;
      const command = w[at + 1] as string;
      if (!commands.has(command)) {
        wrong.push(`${doc}: ${line}: no command ${command}`);
        continue;
      }
      const text = helps.get(command) ?? help([command]);
      helps.set(command, text);
      if (command === 'sample') {
        const from = w.indexOf('--prompt') + 1;
        const end = w.findIndex((x, i) => i >= from && x.startsWith('--'));
        for (const text of w.slice(from, end < 0 ? undefined : end)) {
          if (from > 0 && !prompts.has(text)) wrong.push(`${doc}: ${line}: no shapes prompt '${text}'`);
        }
      }
      for (const flag of w.filter((x) => x.startsWith('--'))) {
        if (!new RegExp(`(^|[\\s,])${flag.split('=')[0]}\\b`, 'm').test(text)) {
          wrong.push(`${doc}: ${line}: ${command} has no ${flag}`);
        }
      }
    }
    expect(commands.size).toBeGreaterThan(5);
    expect(wrong).toEqual([]);
  });

  it('name existing npm scripts', () => {
    const wrong = lines.flatMap(({ doc, line }) => {
      const w = words(line);
      return w[0] === 'npm' && w[1] === 'run' && !scripts.includes(w[2] as string) ? [`${doc}: ${line}`] : [];
    });
    expect(wrong).toEqual([]);
  });
});

// The command lines of the README and the guide run in order, as a user who follows the pages would run them, in one
// empty folder with this build's CLI (`npx diffusion-nft` is dist/lib/cli.js): each exits 0, and what it writes (its
// --out, or the files it writes by design) exists and loads: checkpoints load, PNGs decode, metrics records parse.
// Every line of an sh block runs unless the block is marked ```sh no-run; the skipped lines are listed below by name.
// Lines of minutes run with only their duration and size flags shrunk, so that the whole takes about 2 minutes of CPU:
// --minutes (pretrain, train, demo) and --steps (pretrain: optimiser steps) are replaced by short values; --epochs of
// the resumed train becomes one more than the run it resumes has done; --samples-per-prompt 1 is added to the jobs
// that evaluate on the 48 test prompts (demo, pretrain, train, eval: 8 or 4 by default) and --steps 8 (Euler steps)
// to eval. Nothing else is rewritten: toy2d, info and sample run exactly as written, and toy2d does what the prose
// around it promises (the reward rises from about 0.16 to 1.00).
const RUN_PAGES = ['README.md', 'docs/guide.md'];
// The lines that do not run here, each for a reason: installing takes the registry, and the developers' scripts
// build the package and run every test suite (this one among them).
const SKIPPED = ['README.md: npm install diffusion-nft', 'README.md: npm run demo', 'README.md: npm test'];
const SHORT_MINUTES = '0.01';
// A line's time limit: generous, as a loaded machine runs them several times slower than their CPU time.
const LINE_LIMIT_MS = 600_000;
const SHORT_STEPS = '3';

/** The lines of a page's sh blocks, continuation lines joined, comments and blank lines dropped; `run` is false in a no-run block. */
function commandLines(markdown: string): { line: string; run: boolean }[] {
  return [...markdown.matchAll(/^```(?:sh|bash|shell)([^\n]*)\n([\s\S]*?)^```/gm)].flatMap((m) => {
    const run = !(m[1] as string).split(/\s+/).includes('no-run');
    return (m[2] as string)
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.replace(/\s*#.*$/, '').trim())
      .filter((line) => line !== '')
      .map((line) => ({ line, run }));
  });
}

/** The value of `flag` in `args`, or undefined. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
}

/** `args` with `flag` set to `value`: replaced where given, else added when `add`. */
function withFlag(args: string[], flag: string, value: string, add: boolean): string[] {
  const at = args.indexOf(flag);
  if (at >= 0) return args.map((a, i) => (i === at + 1 ? value : a));
  return add ? [...args, flag, value] : args;
}

/** The epochs a run folder's metrics record as done. */
function epochsDone(run: string): number {
  const records = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { kind: string; epoch: number });
  return Math.max(0, ...records.filter((r) => r.kind === 'epoch').map((r) => r.epoch));
}

/** The arguments the test runs for a CLI line: its own, with the duration and size flags of the header shrunk. */
function shrunk(args: string[], cwd: string): string[] {
  const [command] = args;
  let a = args;
  if (command === 'demo' || command === 'pretrain' || command === 'train') {
    a = withFlag(a, '--minutes', SHORT_MINUTES, command === 'demo');
    a = withFlag(a, '--samples-per-prompt', '1', true);
  }
  if (command === 'pretrain') a = withFlag(a, '--steps', SHORT_STEPS, false);
  if (command === 'eval') a = withFlag(withFlag(a, '--samples-per-prompt', '1', true), '--steps', '8', true);
  if (command === 'train' && a.includes('--resume')) {
    const run = dirname(join(cwd, flagValue(a, '--base') as string));
    a = withFlag(a, '--epochs', String(epochsDone(run) + 1), false);
  }
  return a;
}

/** Checks that a file is a PNG that decodes to an image. */
function expectPng(path: string): void {
  const png = PNG.sync.read(readFileSync(path));
  expect(png.width * png.height, path).toBeGreaterThan(0);
}

/** Checks that a file is a checkpoint that loads; returns its metadata. */
async function expectCheckpoint(path: string): Promise<Record<string, string>> {
  const { net, metadata } = await loadCheckpoint(path);
  expect(net.paramCount, path).toBeGreaterThan(0);
  net.dispose();
  return metadata;
}

/** Checks a run folder of `train` (or the demo's run/): checkpoint, metrics with an evaluation, config, grids, curves. */
async function expectRun(run: string): Promise<void> {
  await expectCheckpoint(join(run, 'checkpoint.safetensors'));
  const kinds = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { kind: string }).kind);
  expect(kinds).toContain('evaluation');
  JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  const grids = readdirSync(join(run, 'samples')).filter((f) => f.endsWith('.png'));
  expect(grids.length, run).toBeGreaterThan(0);
  for (const f of grids) expectPng(join(run, 'samples', f));
  const curves = readdirSync(run).filter((f) => /-vs-.*\.png$/.test(f));
  expect(curves.length, run).toBeGreaterThan(0);
  for (const f of curves) expectPng(join(run, f));
}

/** What each command must leave behind (its --out, or its files by design) and print, given its arguments. */
const WRITES: Record<string, (args: string[], cwd: string, stdout: string) => Promise<void> | void> = {
  toy2d: (_, __, stdout) => {
    const rewards = [...stdout.matchAll(/^epoch +\d+ +reward ([\d.]+)/gm)].map((m) => Number(m[1]));
    expect(rewards[0], stdout).toBeLessThan(0.3);
    expect(rewards.at(-1), stdout).toBeGreaterThan(0.95);
  },
  info: (_, __, stdout) => expect(stdout).toMatch(/cpu/i),
  demo: async (args, cwd) => {
    const out = join(cwd, flagValue(args, '--out') ?? 'diffusion-nft-demo');
    expect(readFileSync(join(out, 'summary.md'), 'utf8')).toMatch(/strict/i);
    for (const f of ['samples-before.png', 'samples-before-cfg.png', 'samples-after.png']) expectPng(join(out, f));
    await expectRun(join(out, 'run'));
  },
  pretrain: async (args, cwd) => {
    const metadata = await expectCheckpoint(join(cwd, flagValue(args, '--out') as string));
    if (args.includes('--images')) expect(metadata['images.classes']).toBeDefined();
  },
  eval: (_, __, stdout) => expect(stdout).toMatch(/strict \d\.\d{3}/),
  sample: (args, cwd) => expectPng(join(cwd, flagValue(args, '--out') as string)),
  train: (args, cwd) => expectRun(join(cwd, flagValue(args, '--out') as string)),
};

/** The photos/<class>/*.png folder that docs/data.md describes: rendered shapes prompts, two classes of four. */
function writePhotos(cwd: string): void {
  const side = 16;
  for (const [k, name] of ['circles', 'squares'].entries()) {
    mkdirSync(join(cwd, 'photos', name), { recursive: true });
    const prompt = tasks.shapes.ALL_PROMPTS[k] as (typeof tasks.shapes.ALL_PROMPTS)[number];
    for (let i = 0; i < 4; i++) {
      const pixels = tasks.shapes.renderPrompt(prompt, 1, i); // [-1, 1], HWC
      const png = new PNG({ width: side, height: side });
      for (let p = 0; p < side * side; p++) {
        for (let c = 0; c < 3; c++) png.data[4 * p + c] = Math.round(((pixels[3 * p + c] as number) + 1) * 127.5);
        png.data[4 * p + 3] = 255;
      }
      writeFileSync(join(cwd, 'photos', name, `${i}.png`), PNG.sync.write(png));
    }
  }
}

describe('the command lines of the README and the guide', () => {
  const lines = RUN_PAGES.flatMap((page) =>
    commandLines(readFileSync(page, 'utf8')).map((l) => ({ ...l, name: `${page}: ${l.line}` })),
  );
  const cwd = join(work, 'command-lines');

  it('skip only the listed lines, and every other line is a CLI line', () => {
    expect(lines.filter((l) => !l.run).map((l) => l.name)).toEqual(SKIPPED);
    const other = lines.filter((l) => l.run && !l.line.startsWith('npx diffusion-nft '));
    expect(other.map((l) => l.name)).toEqual([]);
  });

  it(
    'run in order, exit 0 and write what they name',
    async () => {
      mkdirSync(cwd, { recursive: true });
      writePhotos(cwd);
      const ran: string[] = [];
      for (const { line, run, name } of lines) {
        if (!run) continue;
        const args = shrunk(words(line).slice(2), cwd);
        const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli.js'), ...args], {
          cwd,
          encoding: 'utf8',
          timeout: LINE_LIMIT_MS,
        });
        expect(r.status, `${name}\nran: ${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
        const check = WRITES[args[0] as string];
        expect(check, `${name}: no check of what ${args[0]} writes`).toBeDefined();
        await check?.(args, cwd, r.stdout);
        ran.push(args[0] as string);
      }
      expect(ran).toEqual([
        'toy2d',
        'demo',
        'info',
        'pretrain',
        'pretrain',
        'pretrain',
        'eval',
        'sample',
        'train',
        'train',
      ]);
    },
    3 * LINE_LIMIT_MS,
  );
});
