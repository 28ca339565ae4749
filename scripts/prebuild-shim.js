#!/usr/bin/env node
// prebuildify spawns `node-gyp rebuild ...`; this stand-in runs the CMake build instead (prebuildify has no
// cmake-js backend). Extra CMake flags come from DNFT_CMAKE_ARGS, e.g. "--CDDNFT_CUDA=OFF".
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const arch = args.find((a) => a.startsWith('--arch='))?.slice('--arch='.length) ?? process.arch;
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const extra = (process.env.DNFT_CMAKE_ARGS ?? '').split(/\s+/).filter(Boolean);
const result = spawnSync(process.execPath, [cmakeJs, 'rebuild', '--arch', arch, '--CDDNFT_BUILD_TESTS=OFF', ...extra], {
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
