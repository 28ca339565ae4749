// The install a user gets: `npm pack` the package (with its prebuilt binary), install the tarball into an empty
// project with no build step, and use it.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'dnft-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hasPrebuild = existsSync(join(root, 'prebuilds', `${process.platform}-${process.arch}`));

describe('packed tarball', () => {
  it('has a prebuilt binary (npm run prebuild)', () => expect(hasPrebuild).toBe(true));
  it('installs into an empty project and trains without a compiler', () => {
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, encoding: 'utf8' }),
    ) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]?.files.map((f) => f.path) ?? [];
    expect(files.some((f) => f.startsWith('prebuilds/linux-x64/') && f.endsWith('.node'))).toBe(true);
    expect(files).toContain('dist/lib/index.js');
    expect(files.some((f) => f.startsWith('build/'))).toBe(false);

    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
    // No compiler: a build step during install would fail loudly.
    const env = {
      ...process.env,
      CC: '/bin/false',
      CXX: '/bin/false',
      PATH: `/nonexistent-compilers:${process.env.PATH}`,
    };
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', join(dir, packed[0]?.filename ?? '')],
      {
        cwd: app,
        env,
        stdio: 'pipe',
      },
    );
    expect(readdirSync(join(app, 'node_modules', 'diffusion-nft'))).not.toContain('build');
    writeFileSync(
      join(app, 'main.mjs'),
      `import { VelocityNet, FlowMatchingTrainer, tasks, backendInfo } from 'diffusion-nft';
const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
const { x0, cond } = tasks.toy2d.batch(32, 1, 0);
const stats = await trainer.step({ x0, cond });
console.log(JSON.stringify({ step: stats.step, loss: stats.loss, threads: backendInfo().threads }));`,
    );
    const run = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', env });
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { step: number; loss: number };
    expect(result.step).toBe(1);
    expect(Number.isFinite(result.loss)).toBe(true);
  });
});
