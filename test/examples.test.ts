// The runnable pipelines of examples/ (linked from the README's quick start): type-checked against the package's
// source with examples/tsconfig.json, then run on tiny settings against the build (dist/), each as a user would,
// importing 'diffusion-nft' and 'onnxruntime-node' as installed packages; data-parallel.ts under Open MPI's mpirun.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { tempFolder } from './helpers.js';
import { LAUNCHERS } from './mpi-launchers.js';

const ROOT = resolve('.');
const work = tempFolder('examples');
const LIMIT_MS = 240_000;

// node_modules of the programs: this package and the ONNX runtime, as a user's install has them.
mkdirSync(join(work, 'node_modules'));
symlinkSync(ROOT, join(work, 'node_modules', 'diffusion-nft'));
symlinkSync(join(ROOT, 'node_modules', 'onnxruntime-node'), join(work, 'node_modules', 'onnxruntime-node'));
writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));

// The example's JavaScript, next to that node_modules.
function program(name: string): string {
  const source = readFileSync(join(ROOT, 'examples', `${name}.ts`), 'utf8');
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const file = join(work, `${name}.js`);
  writeFileSync(file, js);
  return file;
}

function run(command: string[], env: NodeJS.ProcessEnv) {
  const r = spawnSync(command[0] as string, command.slice(1), { cwd: work, env, encoding: 'utf8', timeout: LIMIT_MS });
  const output = `${r.stdout}${r.stderr}`;
  expect(r.status, output).toBe(0);
  return output;
}

describe('examples/', { timeout: LIMIT_MS + 10_000 }, () => {
  it('type-check against the package', () => {
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', 'examples/tsconfig.json'], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toBe('');
  });

  it('http-reward.ts trains on a reward served over HTTP, retrying the refused request', () => {
    const out = run([process.execPath, program('http-reward')], { ...process.env, EPOCHS: '2', PRETRAIN_STEPS: '40' });
    expect(out).toMatch(/^epoch 2: reward /m);
    expect(out).toMatch(/mean reward before -?[\d.]+, after -?[\d.]+; \d+ requests/);
  });

  it('lora-shapes.ts trains adapters of the shipped base and saves a PEFT adapter and an ONNX model', () => {
    const out = run([process.execPath, program('lora-shapes')], { ...process.env, EPOCHS: '1', OUT: 'lora' });
    expect(out).toMatch(/^epoch 1: reward /m);
    for (const file of ['adapter/adapter_model.safetensors', 'adapter/adapter_config.json', 'model.onnx']) {
      expect(existsSync(join(work, 'lora', file)), file).toBe(true);
    }
  });

  it('data-parallel.ts trains on 2 ranks under mpirun', () => {
    const { command, ranks, env } = LAUNCHERS['Open MPI'];
    const out = run([...command, ranks, '2', process.execPath, program('data-parallel')], {
      ...env,
      EPOCHS: '2',
      PRETRAIN_STEPS: '40',
    });
    expect(out).toMatch(/^epoch 2: reward /m);
    expect(out).toMatch(/rank 0 of 2: [\d.]+ of the samples on a red mode/);
  });

  it('sample-grid.ts writes the same grid natively and through onnxruntime-node', () => {
    const out = run([process.execPath, program('sample-grid')], { ...process.env, OUT: 'grid' });
    const largest = Number(/largest difference ([\d.e+-]+)/.exec(out)?.[1]);
    expect(largest, out).toBeLessThan(1e-3);
    for (const file of ['native.png', 'onnxruntime.png']) {
      expect(
        readFileSync(join(work, 'grid', file))
          .subarray(1, 4)
          .toString(),
      ).toBe('PNG');
    }
  });
});
