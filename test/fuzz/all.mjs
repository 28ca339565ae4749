// `npm run fuzz [-- --inputs N --seed S]`: every fuzzer in turn with the same arguments (the surfaces fuzzer once for
// each surface); exits 1 on any finding.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const runs = [
  ['checkpoint-fuzz.mjs'],
  ['native-fuzz.mjs'],
  ...['adapter', 'peft', 'state-dict', 'image-folder'].map((surface) => ['surfaces-fuzz.mjs', '--surface', surface]),
];
let status = 0;
for (const [fuzzer, ...args] of runs) {
  const script = fileURLToPath(new URL(fuzzer, import.meta.url));
  const run = spawnSync(process.execPath, [script, ...args, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (run.status !== 0) status = 1;
}
process.exitCode = status;
