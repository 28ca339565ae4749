// The install a user gets: `npm pack` the package (with its prebuilt binaries), then install the tarball into an
// empty project with npm 10 and npm 11, with install scripts allowed or not, on a PATH without any compiler, and use
// it from JavaScript and TypeScript.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_COMMANDS } from '../lib/core/native.js';
import { tempFolder } from './helpers.js';

const root = resolve(import.meta.dirname, '..');
const dir = tempFolder('pack');

// What users run and read, and nothing else: the compiled library and its types (the ES modules, and the entry of
// require()), the prebuilt binaries, the sources a user on another platform builds from (docs/install.md), the shipped
// base model, the README, the docs it and the API's comments point to, and the licence.
const SHIPPED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^dist\/lib\/.+\.(js|d\.ts)$/,
  /^dist\/lib\/require\.(cjs|d\.cts)$/,
  /^docs\/[\w-]+\.md$/,
  /^docs\/images\/[\w.-]+\.png$/,
  /^prebuilds\/linux-(x64|arm64)\/diffusion-nft\.glibc\.node$/,
  /^CMakeLists\.txt$/,
  /^native\/(addon|core|cpu|cuda)\/[\w/]+\.(cpp|h|cu|cuh|def)$/,
  // The MPI bridge that `npm run build:mpi` builds in an installed package (docs/distributed.md).
  /^native\/mpi\/(CMakeLists\.txt|dnft_mpi\.(cpp|h))$/,
  /^models\/shapes-base\.safetensors$/,
];
const REQUIRED = [
  'LICENSE',
  'dist/lib/index.js',
  'dist/lib/index.d.ts',
  'dist/lib/cli.js',
  'dist/lib/require.cjs',
  'dist/lib/require.d.cts',
  'prebuilds/linux-x64/diffusion-nft.glibc.node',
  'CMakeLists.txt',
  'native/addon/addon.cpp',
  'models/shapes-base.safetensors',
];

let tarball = '';
let files: string[] = [];
beforeAll(() => {
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }),
  ) as { filename: string; files: { path: string }[] }[];
  tarball = join(dir, packed[0]?.filename ?? '');
  files = packed[0]?.files.map((f) => f.path) ?? [];
});

describe('packed tarball', () => {
  it('holds only what users run', () => {
    expect(files.filter((f) => !SHIPPED.some((pattern) => pattern.test(f)))).toEqual([]);
    for (const file of REQUIRED) expect(files).toContain(file);
    // Every page of docs/, and every file the README and the docs link to inside docs/, is in the package.
    const pages = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md'));
    for (const page of pages) expect(files).toContain(`docs/${page}`);
    for (const [from, text] of [
      ['', readFileSync(join(root, 'README.md'), 'utf8')],
      ...pages.map((page) => ['docs/', readFileSync(join(root, 'docs', page), 'utf8')]),
    ] as const) {
      for (const [, target] of text.matchAll(/\]\(([\w./-]+?)(?:#[\w-]*)?\)/g)) {
        const path = join(from, target as string);
        if (path.startsWith('docs/')) expect(files, `${from}: ${target}`).toContain(path);
      }
    }
    // npm infers an install script (`node-gyp rebuild`) from a binding.gyp at the package root.
    expect(files).not.toContain('binding.gyp');
  });

  it('declares its licence and repository and has no install script', () => {
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    expect(manifest.license).toBe('MIT');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(manifest.repository.url).toMatch(/^git\+https:\/\//);
    expect(manifest.homepage).toMatch(/^https:\/\//);
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare'])
      expect(manifest.scripts[hook]).toBeUndefined();
    // No compiled file points at a source map or a source that is not shipped.
    for (const file of files.filter((f) => f.endsWith('.js'))) {
      expect(readFileSync(join(root, file), 'utf8'), file).not.toContain('sourceMappingURL');
    }
  });
});

// A PATH with Node, npm and a shell only: no cc, c++, g++, make or cmake.
function compilerFreePath(): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const tool of ['sh', 'bash'])
    symlinkSync(execFileSync('which', [tool], { encoding: 'utf8' }).trim(), join(bin, tool));
  symlinkSync(process.execPath, join(bin, 'node'));
  return bin;
}

// The npm CLIs to install with: this machine's (npm 11) and npm 10 from the registry, each run by this Node.
function npmClis(): Record<string, string> {
  const npm11 = realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim());
  const prefix = join(dir, 'npm10');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--prefix', prefix, 'npm@10'], {
    stdio: 'pipe',
  });
  return { 10: join(prefix, 'node_modules', 'npm', 'bin', 'npm-cli.js'), 11: npm11 };
}

const MAIN = `import { VelocityNet, FlowMatchingTrainer, tasks, backendInfo } from 'diffusion-nft';
const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
const { x0, cond } = tasks.toy2d.batch(32, 1, 0);
const stats = await trainer.step({ x0, cond });
console.log(JSON.stringify({ step: stats.step, loss: stats.loss, threads: backendInfo().threads }));`;

// The published types compile on their own (strict, no skipLibCheck, no `types` list), give what a user imports a
// public name, and hide the native internals.
const TYPED = `import { backendInfo, type BackendInfo, imageGrid, type ShapesPrompt, tasks, Tensor, type Toy2dPrompt, VelocityNet } from 'diffusion-nft';
const net: VelocityNet = VelocityNet.create({ dataDim: 2 });
const count: number = net.paramCount;
const info: BackendInfo = backendInfo();
const prompt: ShapesPrompt | undefined = tasks.shapes.TEST_PROMPTS[0];
const mode: Toy2dPrompt | undefined = tasks.toy2d.prompts[1];
const png: Uint8Array = imageGrid(Tensor.zeros([4, 12]), { size: 2 });
// @ts-expect-error the native model is not part of the published types
net.model.release();
console.log(JSON.stringify({ count, threads: info.threads, prompt: prompt?.text, mode: mode?.tokens, png: png.length }));`;

// A CommonJS program that trains a step (Node >= 20.19 require()s the ES modules).
const MAIN_CJS = `const { VelocityNet, FlowMatchingTrainer, tasks } = require('diffusion-nft');
const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
const { x0, cond } = tasks.toy2d.batch(32, 1, 0);
new FlowMatchingTrainer(net, { lr: 1e-3 }).step({ x0, cond }).then((stats) => console.log(JSON.stringify({ step: stats.step })));`;

// TypeScript 7 as `npm i -D typescript` installs it today (TypeScript 7 lists no @types by default), beside the
// project's own 5.x.
const TYPESCRIPT_7 = '7.0.2';

describe('installing the tarball without a compiler', () => {
  let clis: Record<string, string> = {};
  let bin = '';
  beforeAll(() => {
    clis = npmClis();
    bin = compilerFreePath();
  });

  it('has no compiler on the PATH it installs with', () => {
    const probe = spawnSync(
      'sh',
      ['-c', 'command -v cc || command -v c++ || command -v g++ || command -v make || command -v cmake'],
      {
        env: { PATH: bin },
        encoding: 'utf8',
      },
    );
    expect(probe.status, probe.stdout).not.toBe(0);
  });

  for (const major of ['10', '11']) {
    for (const scripts of ['allowed', 'ignored']) {
      it(`installs with npm ${major}, install scripts ${scripts}, and trains`, () => {
        const app = join(dir, `app-npm${major}-${scripts}`);
        mkdirSync(app);
        writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
        const env = { HOME: process.env.HOME ?? dir, PATH: bin };
        const npm = (...args: string[]) =>
          spawnSync(process.execPath, [clis[major] as string, ...args], { cwd: app, env, encoding: 'utf8' });
        const flags = [
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          ...(scripts === 'ignored' ? ['--ignore-scripts'] : []),
        ];
        const install = npm('install', ...flags, tarball);
        expect(install.status, install.stderr).toBe(0);
        expect(npm('--version').stdout.trim().split('.')[0]).toBe(major);
        const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'));
        expect(lock.packages['node_modules/diffusion-nft'].hasInstallScript).toBeUndefined();
        expect(readdirSync(join(app, 'node_modules', 'diffusion-nft'))).not.toContain('build');
        if (major === '11') {
          // npm 11 lists the packages whose install scripts await approval: this one has none to approve.
          const pending = npm('install-scripts', 'ls');
          expect(pending.stdout).not.toContain('diffusion-nft');
        }
        writeFileSync(join(app, 'main.mjs'), MAIN);
        const run = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', env });
        expect(run.status, run.stderr).toBe(0);
        const result = JSON.parse(run.stdout) as { step: number; loss: number };
        expect(result.step).toBe(1);
        expect(Number.isFinite(result.loss)).toBe(true);
      });
    }
  }

  // A project of each module kind with the tarball and Node's types installed, as a user sets one up.
  function project(name: string, type: 'module' | 'commonjs'): string {
    const app = join(dir, name);
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type }));
    const types = `@types/node@${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).devDependencies['@types/node']}`;
    const flags = ['--no-audit', '--no-fund', '--prefer-offline'];
    execFileSync(process.execPath, [clis['11'] as string, 'install', ...flags, tarball, types], {
      cwd: app,
      stdio: 'pipe',
    });
    return app;
  }

  it('is require()d from a CommonJS project; where require() of ES modules is off it says to import()', () => {
    const app = project('app-require', 'commonjs');
    writeFileSync(join(app, 'main.js'), MAIN_CJS);
    const run = spawnSync(process.execPath, ['main.js'], { cwd: app, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).step).toBe(1);
    // As on Node < 20.19, which cannot require() ES modules.
    const old = spawnSync(process.execPath, ['--no-experimental-require-module', 'main.js'], {
      cwd: app,
      encoding: 'utf8',
    });
    expect(old.status).not.toBe(0);
    expect(old.stderr).toContain("diffusion-nft is ESM only: use await import('diffusion-nft')");
  });

  describe('ships types that compile with skipLibCheck false and hide the internals', () => {
    const compilers: Record<string, string> = {};
    const apps: Record<string, string> = {};
    beforeAll(() => {
      const prefix = join(dir, 'typescript7');
      const flags = ['--no-audit', '--no-fund', '--prefer-offline', '--prefix', prefix];
      execFileSync('npm', ['install', ...flags, `typescript@${TYPESCRIPT_7}`], { stdio: 'pipe' });
      compilers['5'] = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
      compilers['7'] = join(prefix, 'node_modules', 'typescript', 'bin', 'tsc');
      apps.module = project('app-types-esm', 'module');
      apps.commonjs = project('app-types-cjs', 'commonjs');
      for (const app of Object.values(apps)) writeFileSync(join(app, 'main.ts'), TYPED);
    }, 300_000);

    // ES modules; CommonJS as TypeScript models Node >= 20.19 (nodenext: require() of ES modules) and as plain
    // `module: commonjs`. (`node16` models a Node that cannot require() them, and so reports this package's.)
    const cases = [
      { app: 'module', module: 'nodenext' },
      { app: 'commonjs', module: 'nodenext' },
      { app: 'commonjs', module: 'commonjs' },
    ] as const;
    for (const major of ['5', '7']) {
      for (const c of cases) {
        it(`under TypeScript ${major}, a ${c.app} project with module ${c.module}`, () => {
          const cwd = apps[c.app] as string;
          const out = join(cwd, `out-${major}-${c.module}`);
          const args = ['--strict', '--skipLibCheck', 'false', '--module', c.module, '--target', 'es2022'];
          const tsc = spawnSync(process.execPath, [compilers[major] as string, ...args, '--outDir', out, 'main.ts'], {
            cwd,
            encoding: 'utf8',
          });
          expect(tsc.status, tsc.stdout).toBe(0);
          const version = spawnSync(process.execPath, [compilers[major] as string, '--version'], { encoding: 'utf8' });
          expect(version.stdout).toMatch(new RegExp(`^Version ${major}\\.`));
          // What it compiled to runs: require() in the CommonJS projects.
          const run = spawnSync(process.execPath, [join(out, 'main.js')], { cwd, encoding: 'utf8' });
          expect(run.status, run.stderr).toBe(0);
          expect(JSON.parse(run.stdout)).toMatchObject({ prompt: expect.any(String), png: expect.any(Number) });
        });
      }
    }
  });
});

describe('a platform without a prebuilt binary', () => {
  it('builds the addon from the shipped sources with the commands the load error gives', () => {
    const app = join(dir, 'app-source-build');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
    const env = {
      ...process.env,
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    };
    execFileSync('npm', ['install', tarball], { cwd: app, env, stdio: 'pipe' });
    // As on a platform with no binary in prebuilds/.
    rmSync(join(app, 'node_modules', 'diffusion-nft', 'prebuilds'), { recursive: true });
    const missing = spawnSync(process.execPath, ['-e', "import('diffusion-nft').then((m) => m.backendInfo())"], {
      cwd: app,
      encoding: 'utf8',
    });
    expect(missing.status).not.toBe(0);
    for (const command of BUILD_COMMANDS) expect(missing.stderr).toContain(command);
    // CPU only (the documented option), to keep CI quick: a CUDA build adds minutes of nvcc.
    const commands = BUILD_COMMANDS.map((c) => (c.includes('cmake-js compile') ? `${c} --CDDNFT_CUDA=OFF` : c));
    for (const command of commands) execFileSync('sh', ['-c', command], { cwd: app, env, stdio: 'pipe' });
    writeFileSync(join(app, 'main.mjs'), MAIN);
    const run = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).step).toBe(1);
  }, 900_000);
});
