// Long-running CLI commands of the tests: started, waited on until their output says something, stopped by Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';

const outputs = new WeakMap<ChildProcess, { text: string }>();

/** Starts `node dist/lib/cli.js ...args` and resolves once its output matches `until` (rejects if it exits first). */
export function startCli(
  args: string[],
  until: RegExp,
  timeoutMs = 240_000,
): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  const child = spawn(process.execPath, ['dist/lib/cli.js', ...args]);
  const output = { text: '' };
  outputs.set(child, output);
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ${until} within ${timeoutMs} ms:\n${output.text}`));
    }, timeoutMs);
    let found = false;
    const collect = (chunk: Buffer) => {
      output.text += chunk.toString();
      const match = found ? null : until.exec(output.text);
      if (match) {
        found = true;
        clearTimeout(guard);
        resolve({ child, match });
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('close', (status) => {
      clearTimeout(guard);
      if (!found) reject(new Error(`exited with ${status} before ${until}:\n${output.text}`));
    });
  });
}

/** Sends Ctrl-C (SIGINT) and resolves with the exit status and all the output once the command has ended. */
export function stopCli(child: ChildProcess, timeoutMs = 120_000): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const guard = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const done = () => {
      clearTimeout(guard);
      resolve({ status: child.exitCode, output: outputs.get(child)?.text ?? '' });
    };
    if (child.exitCode !== null) return done();
    child.once('close', done);
    child.kill('SIGINT');
  });
}
