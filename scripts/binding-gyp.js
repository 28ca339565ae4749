#!/usr/bin/env node
// binding.gyp (the node-gyp fallback build, CPU only) lists its sources; CMakeLists.txt finds them by folder and
// writes that CPU-only list to <build>/cpu-sources.txt at configure time. This script keeps the two equal:
//   node scripts/binding-gyp.js --write [build]   rewrite binding.gyp's "sources" from the CMake list
//   node scripts/binding-gyp.js --check [build]   fail, naming the files, when they differ (run by scripts/dev.sh test)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const mode = process.argv[2];
const buildDir = process.argv[3] ?? 'build';
if (mode !== '--write' && mode !== '--check') {
  console.error('usage: node scripts/binding-gyp.js --write|--check [build]');
  process.exit(2);
}
const listPath = join(buildDir, 'cpu-sources.txt');
const cmake = readFileSync(listPath, 'utf8').split('\n').filter(Boolean);
const gyp = readFileSync('binding.gyp', 'utf8');
const block = /("sources": \[)([^\]]*)(\])/;
const match = gyp.match(block);
if (!match) throw new Error('binding.gyp has no "sources" list');

if (mode === '--write') {
  const indent = ' '.repeat(8);
  const body = `\n${cmake.map((file) => `${indent}"${file}"`).join(',\n')}\n${' '.repeat(6)}`;
  writeFileSync('binding.gyp', gyp.replace(block, `$1${body}$3`));
  console.log(`binding.gyp: ${cmake.length} sources written from ${listPath}`);
} else {
  const listed = JSON.parse(`[${match[2]}]`);
  const missing = cmake.filter((file) => !listed.includes(file));
  const extra = listed.filter((file) => !cmake.includes(file));
  if (missing.length > 0) console.log(`binding.gyp lacks: ${missing.join(' ')}`);
  if (extra.length > 0) console.log(`binding.gyp lists files CMake does not build: ${extra.join(' ')}`);
  const ok = missing.length === 0 && extra.length === 0;
  if (ok) console.log(`binding.gyp: the ${listed.length} sources of CMake's CPU-only build`);
  else console.log('fix: node scripts/binding-gyp.js --write');
  console.log(ok ? '1 passed, 0 failed' : '0 passed, 1 failed');
  process.exit(ok ? 0 : 1);
}
