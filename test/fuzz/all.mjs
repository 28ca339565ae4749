// `npm run fuzz [-- --inputs N --seed S]`: both fuzzers in turn with the same arguments; exits 1 on any finding.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

let status = 0;
for (const fuzzer of ['checkpoint-fuzz.mjs', 'native-fuzz.mjs']) {
  const script = fileURLToPath(new URL(fuzzer, import.meta.url));
  const run = spawnSync(process.execPath, [script, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (run.status !== 0) status = 1;
}
process.exitCode = status;
