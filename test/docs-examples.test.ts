// The docs' examples are programs that work: the ```ts blocks of each page below are joined into one program (their
// imports from 'diffusion-nft' merged), type-checked against the package's source (tsc, the repository's settings)
// and run against the build (dist/) under a time limit; a block marked ```ts no-run is type-checked only. The ```sh
// blocks of every doc may name only commands and flags that the CLI's --help lists, and `npm run` scripts that
// package.json has.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { tasks } from '../lib/index.js';

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

// The README's quick-start lines that take seconds run as written (`npx diffusion-nft` is this build's CLI), in an
// empty folder, and do what the prose around them says: toy2d's reward rises from about 0.16 to 1.00. The demo, which
// takes minutes, runs on tiny settings in test/memory.test.ts (which checks its files and its memory).
describe("the README's quick start", () => {
  const quick = shellLines(readFileSync('README.md', 'utf8')).filter((line) =>
    /^npx diffusion-nft (toy2d|info)\b/.test(line),
  );

  it(
    'runs toy2d and info, and toy2d raises the reward to 1.00',
    () => {
      expect(quick.map((line) => words(line)[2])).toEqual(['toy2d', 'info']);
      const cwd = join(work, 'quick-start');
      mkdirSync(cwd, { recursive: true });
      const outputs = quick.map((line) => {
        const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'lib', 'cli.js'), ...words(line).slice(2)], {
          cwd,
          encoding: 'utf8',
          timeout: RUN_LIMIT_MS,
        });
        expect(r.status, `${line}\n${r.stdout}${r.stderr}`).toBe(0);
        return r.stdout;
      });
      const toy2d = outputs[0] as string;
      const rewards = [...toy2d.matchAll(/^epoch +\d+ +reward ([\d.]+)/gm)].map((m) => Number(m[1]));
      expect(rewards[0], toy2d).toBeLessThan(0.3);
      expect(rewards.at(-1), toy2d).toBeGreaterThan(0.95);
      expect(outputs[1]).toMatch(/cpu/i);
    },
    2 * RUN_LIMIT_MS,
  );
});
