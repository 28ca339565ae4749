// The memory of the first command a newcomer runs. On tiny settings (seconds of DiffusionNFT, one sample of each test
// prompt per evaluation) the demo still takes full training steps of its recipe (16 prompts × 8 samples at 9 times:
// 1,152 rows), whose activations the trainers' default microBatch bounds. The demo's peak RSS, as the child process
// itself reports it at exit, stays under a bound that those rows taken all at once (microBatch 0) exceed.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempFolder } from './helpers.js';

// The README gives about 1.1 GB for the demo (at 8 samples per prompt; about 0.75 GB here); all 1,152 rows at once
// took 5.6 GB.
const PEAK_BOUND_MIB = 1536;
// Loaded before the CLI: prints the process's peak resident set size (KiB) as it exits.
const REPORT_PEAK = `process.on('exit', () => process.stderr.write('peak-rss-kib ' + process.resourceUsage().maxRSS + '\\n'));`;

/** Runs `diffusion-nft demo` on tiny settings; returns its exit status, output and peak RSS in MiB. */
function demo(out: string, ...flags: string[]): { status: number | null; output: string; peakMib: number } {
  const args = ['--minutes', '0.01', '--samples-per-prompt', '1', '--out', out, ...flags];
  const r = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(REPORT_PEAK)}`, 'dist/lib/cli.js', 'demo', ...args],
    { encoding: 'utf8' },
  );
  const output = `${r.stdout}${r.stderr}`;
  const kib = Number(/peak-rss-kib (\d+)/.exec(r.stderr)?.[1]);
  return { status: r.status, output, peakMib: kib / 1024 };
}

describe('the demo on tiny settings', () => {
  it(`peaks under ${PEAK_BOUND_MIB} MiB of RSS with the default microBatch`, () => {
    const out = join(tempFolder('memory'), 'demo');
    const r = demo(out);
    expect(r.status, r.output).toBe(0);
    expect(existsSync(join(out, 'summary.md'))).toBe(true);
    expect(r.output).toMatch(/epoch +1 /);
    expect(r.peakMib, r.output).toBeGreaterThan(0);
    expect(r.peakMib).toBeLessThan(PEAK_BOUND_MIB);
  }, 1_200_000);
});
