// The bench's report step (bench/charts.ts, `npm run bench -- report <folder>`) draws a results folder's charts from
// its records alone: run on copies of committed folders stripped of every picture, it writes each kind's charts.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { drawReport } from '../bench/charts.js';

const work = mkdtempSync(join(tmpdir(), 'dnft-report-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const FOLDERS = [
  '2026-12-05-plateau-longer-base-Intel-Xeon', // a sweep: results.json with its report, one run of one seed
  '2026-12-04-B4-LoRA-1thread', // two runs (metrics.jsonl) side by side, no results.json
  '2026-11-23-B4-AMD-EPYC-base2', // the older B4 report: results.json with each run's points, metrics.json runs
];
const RUN_CHARTS = ['strict', 'reward', 'testReward'].flatMap((m) => [`${m}-vs-epoch`, `${m}-vs-seconds`]);
const SWEEP_CHARTS = [
  ...['strict', 'testReward'].flatMap((m) => [`${m}-vs-epoch`, `${m}-vs-seconds`]),
  ...['single', 'two', 'counting', 'colours', 'position', 'attribution'].map((c) => `category-${c}-vs-epoch`),
];

function pictures(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(png|svg)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

const isPng = (path: string) => readFileSync(path).subarray(0, 8).equals(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'));

describe('npm run bench -- report', () => {
  it('draws every chart of a results folder from its records', async () => {
    for (const folder of FOLDERS) cpSync(join('bench', 'results', folder), join(work, folder), { recursive: true });
    for (const picture of pictures(work)) rmSync(picture);
    expect(pictures(work)).toEqual([]);

    const drawn = await drawReport(work);
    const kinds = Object.fromEntries(drawn.map((d) => [relative(work, d.dir), d.kind]));
    expect(kinds).toEqual({
      '2026-12-05-plateau-longer-base-Intel-Xeon': 'sweep',
      '2026-12-05-plateau-longer-base-Intel-Xeon/default/seed-1': 'run',
      '2026-12-04-B4-LoRA-1thread': 'runs',
      '2026-12-04-B4-LoRA-1thread/full': 'run',
      '2026-12-04-B4-LoRA-1thread/lora': 'run',
      '2026-11-23-B4-AMD-EPYC-base2': 'runs',
      '2026-11-23-B4-AMD-EPYC-base2/DiffusionNFT-beta=1-lr-1e-4': 'run',
      '2026-11-23-B4-AMD-EPYC-base2/FlowGRPO-eps=0.2-lr-1e-4': 'run',
    });
    for (const d of drawn) {
      for (const chart of d.kind === 'sweep' ? SWEEP_CHARTS : RUN_CHARTS) {
        const png = join(d.dir, `${chart}.png`);
        expect(existsSync(png) && isPng(png), png).toBe(true);
        // A line through the measured points.
        expect(readFileSync(join(d.dir, `${chart}.svg`), 'utf8')).toMatch(/^<svg[\s\S]*<path d="M[\s\S]*<circle /);
      }
    }
    // Each overlay names its runs: the older report by its runs' names, a folder of runs by its folders' names.
    const svg = (dir: string, chart: string) => readFileSync(join(work, dir, `${chart}.svg`), 'utf8');
    expect(svg('2026-11-23-B4-AMD-EPYC-base2', 'strict-vs-epoch')).toContain('FlowGRPO ε=0.2 lr 1e-4');
    expect(svg('2026-12-04-B4-LoRA-1thread', 'testReward-vs-seconds')).toMatch(/>full<[\s\S]*>lora</);
    expect(svg('2026-12-05-plateau-longer-base-Intel-Xeon', 'category-position-vs-epoch')).toContain('default');
  });
});
