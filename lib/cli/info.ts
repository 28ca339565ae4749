// `diffusion-nft info`: the backends this build and machine offer.
import type { Command } from 'commander';
import type { BackendInfo } from '../core/native.js';
import { backendInfo } from '../index.js';

/** The backends in a few lines for people; `info --json` gives the same fields. */
function describeBackends(info: BackendInfo): string {
  const lines = [`CPU: ${info.threads} threads`];
  if (!info.compiledWithCuda) lines.push(`CUDA: ${info.cudaUnavailableReason ?? 'not built in'}`);
  else {
    lines.push(
      info.cuda
        ? `CUDA: ${info.deviceCount} device(s), ${info.device}`
        : `CUDA: unavailable, ${info.cudaUnavailableReason}`,
    );
    const found =
      info.driverVersion ?? (info.driverCudaVersion ? `one supporting CUDA ${info.driverCudaVersion}` : 'none');
    lines.push(
      `  runtime CUDA ${info.cudaRuntime}, needs NVIDIA driver r${info.requiredDriver} or newer; driver found: ${found}`,
    );
  }
  return lines.join('\n');
}

/** Registers `info`. */
export function addInfoCommand(program: Command): void {
  program
    .command('info')
    .description('print the backends this build and machine offer, and what CUDA needs')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => {
      const info = backendInfo();
      console.log(o.json ? JSON.stringify(info, null, 2) : describeBackends(info));
    });
}
