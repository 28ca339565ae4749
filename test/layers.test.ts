// The import rules of lib/ (docs/architecture.md, "The layers of lib/"): the tree keeps them, and the check of
// .dependency-cruiser.cjs fails on an import circle and on an import from a higher layer, type-only ones included.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const DEPCRUISE = resolve('node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const CONFIG = resolve('.dependency-cruiser.cjs');

function depcruise(cwd: string) {
  const run = spawnSync(process.execPath, [DEPCRUISE, '--config', CONFIG, 'lib'], { cwd, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('the layers of lib/', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function fixture(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'dnft-layers-'));
    dirs.push(dir);
    cpSync('tsconfig.json', join(dir, 'tsconfig.json'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return dir;
  }

  it('hold in this tree: no circle, no import from above', () => {
    const run = depcruise('.');
    expect(run.output).toContain('no dependency violations found');
    expect(run.status).toBe(0);
  });

  // The check on a tree of `files`: it must fail, saying each of `errors`.
  function expectViolations(files: Record<string, string>, errors: (string | RegExp)[]): void {
    const run = depcruise(fixture(files));
    expect(run.status).not.toBe(0);
    for (const error of errors) expect(run.output).toMatch(error);
  }

  it('fail on a circle of type-only imports and on an import from a higher layer', () => {
    expectViolations(
      {
        'lib/core/tensor.ts': "import type { Net } from '../model/net.js';\nexport type Tensor = { net?: Net };\n",
        'lib/model/net.ts': "import type { Tensor } from '../core/tensor.js';\nexport type Net = { t?: Tensor };\n",
      },
      [/error no-circular: lib\/core\/tensor\.ts/, 'error core-imports-above: lib/core/tensor.ts → lib/model/net.ts'],
    );
  });

  it('fail on a file of lib/ outside the layer folders', () => {
    expectViolations(
      {
        'lib/core/errors.ts': 'export class E extends Error {}\n',
        'lib/helpers.ts': "import { E } from './core/errors.js';\nexport const e = new E();\n",
      },
      ['error outside-the-layers: lib/helpers.ts → lib/core/errors.ts'],
    );
  });
});
