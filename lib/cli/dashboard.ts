// The CLI's side of the dashboard: the `dashboard` command, and `--dashboard [port]` of the jobs that write runs.
import { stat } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { startDashboard } from '../dashboard/server.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port, 0 to 65535');
  return n;
}

/** The value of `--dashboard [port]`: true, or a port. */
export interface DashboardFlag {
  dashboard?: true | number;
}

/** `--dashboard [port]`: the live dashboard of the job's run (port 0 or none: any free one). */
export function dashboardOption(): Option {
  return new Option('--dashboard [port]', 'serve the live dashboard of the run on 127.0.0.1 while it runs').argParser(
    port,
  );
}

/** Runs `job` with the dashboard of `folders` served meanwhile when `option` asks for it (true or a port). */
export async function withDashboard<T>(
  option: boolean | number | undefined,
  folders: string[],
  job: () => Promise<T>,
): Promise<T> {
  if (option === undefined || option === false) return job();
  const dashboard = await startDashboard({ folders, port: option === true ? 0 : option });
  // stderr, with the job's log: stdout stays the job's result alone (--json).
  console.error(`dashboard: ${dashboard.url}`);
  try {
    return await job();
  } finally {
    await dashboard.close();
  }
}

/** Registers `dashboard [folders...]`: serves until Ctrl-C. */
export function addDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('serve a live dashboard of run folders (or folders of runs, e.g. a B4 results folder) on 127.0.0.1')
    .argument('[folders...]', 'run folders', ['.'])
    .option('--port <n>', 'TCP port (0: any free one)', port, 0)
    .action(async (folders: string[], o: { port: number }) => {
      // A folder that does not exist yet is a run about to start: the page shows it once it writes.
      const waiting: string[] = [];
      for (const folder of folders) {
        const found = await stat(folder).catch(() => undefined);
        if (found === undefined) waiting.push(folder);
        else if (!found.isDirectory()) throw new InvalidArgumentError(`${folder} is not a folder`);
      }
      const dashboard = await startDashboard({ folders, port: o.port });
      // Listened for before the lines that tell a caller it may stop us: a Ctrl-C with no listener kills the process.
      const stopped = new Promise<void>((done) => process.once('SIGINT', done));
      console.log(`dashboard: ${dashboard.url} (Ctrl-C to stop)`);
      for (const folder of waiting) console.log(`waiting for ${folder}: it does not exist yet`);
      await stopped;
      await dashboard.close();
      console.log('dashboard stopped');
    });
}
