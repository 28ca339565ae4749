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

// What users run, and nothing else: the compiled library and its types, the prebuilt binaries, the sources a user on
// another platform builds from (docs/install.md), the shipped base model, the README and the licence.
const SHIPPED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICENSE$/,
  /^dist\/lib\/.+\.(js|d\.ts)$/,
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

// The published types compile on their own (no skipLibCheck), and the native internals are not in them.
const TYPED = `import { VelocityNet } from 'diffusion-nft';
const net: VelocityNet = VelocityNet.create({ dataDim: 2 });
const count: number = net.paramCount;
// @ts-expect-error the native model is not part of the published types
net.model.release();
export { count };`;

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

  it('ships types that compile without skipLibCheck and hide the internals', () => {
    const app = join(dir, 'app-npm11-allowed');
    writeFileSync(join(app, 'main.ts'), TYPED);
    const tsc = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--typeRoots',
        join(root, 'node_modules', '@types'),
        'main.ts',
      ],
      { cwd: app, encoding: 'utf8' },
    );
    expect(tsc.status, tsc.stdout).toBe(0);
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
