#!/usr/bin/env node
// Checks (or with --fix, applies) clang-format on every C++/CUDA source under native/.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const fix = process.argv.includes('--fix');
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else if (/\.(h|cpp|cu|cuh)$/.test(entry.name)) files.push(path);
  }
};
walk('native');
const args = fix ? ['-i', ...files] : ['--dry-run', '--Werror', ...files];
const result = spawnSync('clang-format', args, { stdio: 'inherit' });
if (result.error) {
  console.error(`clang-format not found: ${result.error.message} (apt-get install clang-format)`);
  process.exit(1);
}
if (result.status === 0 && !fix) console.log(`clang-format: ${files.length} files clean`);
process.exit(result.status ?? 1);
