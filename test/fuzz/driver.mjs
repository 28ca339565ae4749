// The part both fuzzers share: inputs are numbered, each derived from (seed + index) alone, and run in batches by
// child processes; a child that dies or hangs pins the input after the last one it reported, which is saved for
// replay, and the rest of its batch is run again. Children print one JSON line per input: { i, outcome, ms, rss }.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** The command line of a fuzzer: --inputs, --children, --seed, --out (default fuzz-findings/NAME), plus `extra`. */
export function fuzzArgs(name, extra = {}) {
  const { values } = parseArgs({
    options: {
      inputs: { type: 'string', default: '5000' },
      children: { type: 'string', default: '2' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string', default: `fuzz-findings/${name}` },
      ...extra,
    },
  });
  return { ...values, inputs: Number(values.inputs), children: Number(values.children), seed: Number(values.seed) };
}

/** A small deterministic generator (mulberry32), so that any input can be made again from its number. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = (r, list) => list[Math.floor(r() * list.length)];

/** In a child: runs inputs [from, to) with `run(i)` (which returns the outcome string) and reports each. */
export async function childLoop(from, to, run) {
  for (let i = from; i < to; i++) {
    const started = performance.now();
    const outcome = await run(i);
    const ms = performance.now() - started;
    process.stdout.write(`${JSON.stringify({ i, outcome, ms, rss: process.resourceUsage().maxRSS })}\n`);
  }
}

/**
 * In the parent: runs `inputs` inputs through `childArgs(from, to)` children, `children` at a time. Outcomes other
 * than those in `expected` are findings, as are crashes and hangs; `save(i, path)` writes input i for replay.
 */
export async function runFuzz({ script, childArgs, inputs, children, batch, msPerInput, expected, save, out }) {
  const summary = { inputs: 0, outcomes: {}, crashes: [], hangs: [], unexpected: [], maxRssMiB: 0 };
  let slowest = { i: -1, ms: 0 };
  const queue = [];
  for (let from = 0; from < inputs; from += batch) queue.push([from, Math.min(inputs, from + batch)]);
  const runBatch = (from, to) =>
    new Promise((resolve) => {
      const proc = spawn(process.execPath, [script, ...childArgs(from, to)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DNFT_NUM_THREADS: '1' },
      });
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (d) => {
        stdout += d;
      });
      proc.stderr.on('data', (d) => {
        stderr += d;
      });
      const timer = setTimeout(() => proc.kill('SIGKILL'), msPerInput * (to - from) + 10_000);
      // 'close', not 'exit': only then has all of the child's output been read (a busy machine loses lines).
      proc.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ stdout, stderr, code, signal });
      });
    });
  const started = performance.now();
  const workers = Array.from({ length: children }, async () => {
    while (queue.length > 0) {
      const [from, to] = queue.shift();
      const result = await runBatch(from, to);
      const lines = result.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      for (const line of lines) {
        summary.inputs += 1;
        const kind = expected.includes(line.outcome) ? line.outcome : 'unexpected';
        summary.outcomes[kind] = (summary.outcomes[kind] ?? 0) + 1;
        if (kind === 'unexpected' && summary.unexpected.length < 20) {
          summary.unexpected.push({ input: line.i, outcome: line.outcome });
        }
        summary.maxRssMiB = Math.max(summary.maxRssMiB, Math.round(line.rss / 1024));
        if (line.ms > slowest.ms) slowest = { i: line.i, ms: line.ms };
      }
      if (result.code !== 0) {
        const bad = from + lines.length;
        mkdirSync(out, { recursive: true });
        const saved = join(out, `input-${bad}`);
        save(bad, saved);
        const finding = {
          input: bad,
          saved,
          code: result.code,
          signal: result.signal,
          stderr: result.stderr.slice(-1500),
        };
        (result.signal === 'SIGKILL' ? summary.hangs : summary.crashes).push(finding);
        summary.inputs += 1;
        if (bad + 1 < to) queue.push([bad + 1, to]);
      }
    }
  });
  await Promise.all(workers);
  const report = {
    ...summary,
    slowestInput: { input: slowest.i, ms: Number(slowest.ms.toFixed(2)) },
    seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  };
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'last-report.json'), JSON.stringify(report, null, 2));
  const clean = summary.crashes.length + summary.hangs.length + summary.unexpected.length === 0;
  return { report, clean: clean && summary.inputs === inputs };
}
