/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The dashboard page's script (runs in the browser, served as /assets/client.js): follows the server's event stream
// and draws the runs' curves with uPlot (loaded by the page as a global), their per-category scores, sample grids
// and configs.
import type UPlot from 'uplot';
import type { EpochRecord, EvaluationRecord, MetricsRecord } from '../metrics/records.js';
import type { RunSnapshot } from './runs.js';

declare const uPlot: typeof UPlot;

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** Any record's fields, for reading one field of whichever kind it is. */
type Fields = Omit<EpochRecord, 'kind' | 'reward'> &
  Omit<EvaluationRecord, 'kind' | 'reward'> & { kind: MetricsRecord['kind']; reward: number | null };

interface ChartSpec {
  key: string;
  title: string;
  kind: 'epoch' | 'evaluation';
  value: (r: Fields) => number | null | undefined;
}

const CHARTS: ChartSpec[] = [
  { key: 'strict', title: 'Strict score (test prompts, no CFG)', kind: 'evaluation', value: (r) => r.strict },
  { key: 'testReward', title: 'Test reward (evaluation)', kind: 'evaluation', value: (r) => r.reward },
  { key: 'reward', title: 'Train reward (rollouts)', kind: 'epoch', value: (r) => r.reward },
  { key: 'loss', title: 'Loss', kind: 'epoch', value: (r) => r.loss },
  { key: 'eta', title: 'η (soft update of θ_old, DiffusionNFT)', kind: 'epoch', value: (r) => r.eta },
  { key: 'gradNorm', title: 'Gradient norm (before clipping)', kind: 'epoch', value: (r) => r.gradNorm },
  { key: 'approxKl', title: 'Approximate KL (likelihood methods)', kind: 'epoch', value: (r) => r.approxKl },
  {
    key: 'clipFraction',
    title: 'Clip fraction (likelihood methods, DGPO)',
    kind: 'epoch',
    value: (r) => r.clipFraction,
  },
  { key: 'ratioMean', title: 'Mean ratio (likelihood methods)', kind: 'epoch', value: (r) => r.ratioMean },
  { key: 'windowStart', title: 'SDE window start (Fast, MixGRPO)', kind: 'epoch', value: (r) => r.windowStart },
  { key: 'fm', title: 'Flow-matching error (AWM)', kind: 'epoch', value: (r) => r.fm },
  { key: 'emaKl', title: 'KL to the EMA anchor (AWM)', kind: 'epoch', value: (r) => r.emaKl },
  { key: 'weightMean', title: 'Group weight σ(S_g) (DGPO)', kind: 'epoch', value: (r) => r.weightMean },
  { key: 'lr', title: 'Learning rate', kind: 'epoch', value: (r) => r.lr },
  { key: 'samplesPerSecond', title: 'Rollouts per second', kind: 'epoch', value: (r) => r.samplesPerSecond },
];

// Tick steps of the x axis: whole epochs; round seconds, minutes and hours.
const EPOCH_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
const SECOND_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400];

const runs = new Map<number, RunSnapshot>();
const charts = new Map<string, { plot: UPlot; signature: string }>();
let xAxis: 'epoch' | 'elapsed' = 'epoch';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const colour = (run: RunSnapshot) => COLOURS[run.id % COLOURS.length] as string;
const evaluations = (run: RunSnapshot) => run.records.filter((r): r is EvaluationRecord => r.kind === 'evaluation');
const epochs = (run: RunSnapshot) => run.records.filter((r): r is EpochRecord => r.kind === 'epoch');
const fixed = (v: number | null | undefined, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '–');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return s === 0 ? `${m}m` : `${m}m${String(s).padStart(2, '0')}s`;
  return m % 60 === 0 ? `${m / 60}h` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** A tick label: four significant digits, or exponential notation for tiny and huge values. */
function tick(v: number): string {
  if (v === 0) return '0';
  return Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, text = '', attrs: Record<string, string> = {}) {
  const node = document.createElement(tag);
  node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

/** The x and y values of one curve of a run, ordered by x. */
function curve(run: RunSnapshot, spec: ChartSpec): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  for (const r of run.records as Fields[]) {
    const y = r.kind === spec.kind ? spec.value(r) : undefined;
    if (typeof y !== 'number' || !Number.isFinite(y)) continue;
    xs.push(xAxis === 'epoch' ? r.epoch : r.elapsed);
    ys.push(y);
  }
  return [xs, ys];
}

function drawChart(spec: ChartSpec, container: HTMLElement): void {
  const list = [...runs.values()];
  const tables = list.map((run) => curve(run, spec));
  const points = tables.reduce((sum, [xs]) => sum + xs.length, 0);
  const card = container.closest('.card') as HTMLElement;
  card.hidden = points === 0;
  card.dataset.points = String(points);
  if (points === 0) return;
  const shown = list.filter((_, i) => (tables[i]?.[0].length ?? 0) > 0);
  card.dataset.runs = String(shown.length);
  const data = uPlot.join(tables.filter(([xs]) => xs.length > 0) as UPlot.AlignedData[]);
  const signature = `${xAxis}|${shown.map((r) => r.id).join(',')}`;
  const existing = charts.get(spec.key);
  if (existing?.signature === signature) {
    existing.plot.setData(data);
    return;
  }
  existing?.plot.destroy();
  const sparse = spec.kind === 'evaluation';
  const plot = new uPlot(
    {
      width: Math.max(300, container.clientWidth),
      height: 240,
      scales: { x: { time: false } },
      // The runs table above is the legend.
      legend: { show: false },
      axes: [
        xAxis === 'epoch'
          ? { label: 'epoch', incrs: EPOCH_STEPS, values: (_u, ticks) => ticks.map(String) }
          : { label: 'training time', incrs: SECOND_STEPS, values: (_u, ticks) => ticks.map(duration) },
        { size: 64, values: (_u, ticks) => ticks.map(tick) },
      ],
      series: [
        {
          label: xAxis === 'epoch' ? 'epoch' : 'time',
          value: (_u, v) => (xAxis === 'epoch' ? String(v) : duration(v)),
        },
        ...shown.map((run) => ({
          label: run.name,
          stroke: colour(run),
          width: 2,
          spanGaps: true,
          points: { show: sparse, size: 6 },
          value: (_u: UPlot, v: number | null) =>
            v === null ? '–' : Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(4),
        })),
      ],
    },
    data,
    container,
  );
  charts.set(spec.key, { plot, signature });
}

function drawCharts(): void {
  const root = $('charts');
  for (const spec of CHARTS) {
    let container = root.querySelector<HTMLElement>(`[data-chart="${spec.key}"] .plot`);
    if (container === null) {
      const card = element('section', '', { class: 'card', 'data-chart': spec.key });
      card.append(element('h2', spec.title));
      container = element('div', '', { class: 'plot' });
      card.append(container);
      root.append(card);
    }
    drawChart(spec, container);
  }
}

function drawRunTable(): void {
  const body = $('runs').querySelector('tbody') as HTMLElement;
  body.replaceChildren();
  for (const run of runs.values()) {
    const evals = evaluations(run);
    const last = evals.at(-1);
    const best = (f: (r: EvaluationRecord) => number | undefined) =>
      Math.max(...evals.map((r) => f(r) ?? Number.NEGATIVE_INFINITY));
    const start = run.records.filter((r) => r.kind === 'start').at(-1);
    const lastEpoch = epochs(run).at(-1);
    const row = element('tr', '', { 'data-run': String(run.id) });
    const chip = element('span', '', { class: 'chip' });
    chip.style.background = colour(run);
    const chipCell = element('td');
    chipCell.append(chip);
    const when = run.records.at(-1)?.time;
    const older = run.records.some((r) => r.version === 0);
    row.append(
      chipCell,
      element('td', run.name, { title: run.dir }),
      element('td', start?.kind === 'start' ? start.trainer : '–'),
      element('td', String(lastEpoch?.epoch ?? last?.epoch ?? 0)),
      element('td', duration(lastEpoch?.elapsed ?? last?.elapsed ?? 0)),
      element('td', last ? `${fixed(last.strict)} / ${fixed(best((r) => r.strict))}` : '–'),
      element('td', last ? `${fixed(last.reward)} / ${fixed(best((r) => r.reward))}` : '–'),
      element('td', run.error ?? (when ? new Date(when).toLocaleString() : older ? 'metrics.json (no times)' : '–'), {
        class: run.error ? 'error' : '',
      }),
    );
    body.append(row);
  }
}

function drawCategories(): void {
  const latest = [...runs.values()].flatMap((run) => {
    const last = evaluations(run)
      .filter((r) => r.categories !== undefined)
      .at(-1);
    return last ? [{ run, last }] : [];
  });
  $('categories-card').hidden = latest.length === 0;
  const names = [...new Set(latest.flatMap(({ last }) => Object.keys(last.categories ?? {})))];
  const table = $('categories');
  table.replaceChildren();
  const head = element('tr');
  head.append(element('th', 'run'), element('th', 'epoch'), element('th', 'overall'));
  for (const name of names) head.append(element('th', name));
  table.append(head);
  for (const { run, last } of latest) {
    const row = element('tr');
    row.append(element('td', run.name), element('td', String(last.epoch)), element('td', fixed(last.strict)));
    for (const name of names) row.append(element('td', fixed(last.categories?.[name], 2)));
    table.append(row);
  }
}

/** Fills a run selector with the given runs, keeping its choice when it is still offered. */
function fillSelect(select: HTMLSelectElement, list: RunSnapshot[]): number | undefined {
  const chosen = select.value;
  select.replaceChildren(...list.map((run) => element('option', run.name, { value: String(run.id) })));
  if (list.some((run) => String(run.id) === chosen)) select.value = chosen;
  return list.length > 0 ? Number(select.value) : undefined;
}

let followLatest = true;

function drawSamples(): void {
  const withGrids = [...runs.values()].filter((run) => evaluations(run).some((r) => r.grid));
  const select = $<HTMLSelectElement>('samples-run');
  const id = fillSelect(select, withGrids);
  $('samples-card').hidden = id === undefined;
  const slider = $<HTMLInputElement>('samples-slider');
  if (id === undefined) return;
  const grids = evaluations(runs.get(id) as RunSnapshot).filter((r) => r.grid);
  slider.max = String(grids.length - 1);
  if (followLatest) slider.value = slider.max;
  const shown = grids[Number(slider.value)] ?? grids.at(-1);
  if (!shown?.grid) return;
  const source = `/runs/${id}/${shown.grid.image}`;
  const image = $<HTMLImageElement>('samples-image');
  if (image.getAttribute('src') !== source) image.src = source;
  const latest = shown === grids.at(-1) ? ', the latest' : '';
  $('samples-label').textContent = `epoch ${shown.epoch}, ${duration(shown.elapsed)} of training${latest}`;
  const prompts = $('samples-prompts');
  prompts.replaceChildren(...shown.grid.prompts.map((p) => element('li', p)));
  alignPrompts();
}

// Each prompt beside its row of the grid.
function alignPrompts(): void {
  const image = $<HTMLImageElement>('samples-image');
  const items = [...$('samples-prompts').children] as HTMLElement[];
  if (items.length === 0 || image.clientHeight === 0) return;
  for (const item of items) item.style.height = `${image.clientHeight / items.length}px`;
}

function drawConfig(): void {
  const withConfig = [...runs.values()].filter((run) => run.config !== null);
  $('config-card').hidden = withConfig.length === 0;
  const id = fillSelect($<HTMLSelectElement>('config-run'), withConfig);
  const config = id === undefined ? null : runs.get(id)?.config;
  $('config').textContent = JSON.stringify(config, null, 2);
}

function drawAll(): void {
  drawRunTable();
  drawCharts();
  drawCategories();
  drawSamples();
  drawConfig();
}

let pending = false;
function schedule(): void {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    drawAll();
  });
}

function connect(): void {
  const status = $('status');
  const events = new EventSource('/events');
  events.addEventListener('open', () => {
    status.textContent = 'live';
    status.classList.add('live');
  });
  events.addEventListener('error', () => {
    status.textContent = 'reconnecting…';
    status.classList.remove('live');
  });
  events.addEventListener('runs', (event) => {
    const list = JSON.parse((event as MessageEvent).data) as { id: number }[];
    for (const id of [...runs.keys()]) if (!list.some((r) => r.id === id)) runs.delete(id);
  });
  events.addEventListener('run', (event) => {
    const run = JSON.parse((event as MessageEvent).data) as RunSnapshot;
    runs.set(run.id, run);
    schedule();
  });
}

for (const input of document.querySelectorAll<HTMLInputElement>('input[name="x"]')) {
  input.addEventListener('change', () => {
    xAxis = input.value as typeof xAxis;
    drawCharts();
  });
}
$('samples-slider').addEventListener('input', (event) => {
  const slider = event.target as HTMLInputElement;
  followLatest = slider.value === slider.max;
  drawSamples();
});
$('samples-run').addEventListener('change', () => {
  followLatest = true;
  drawSamples();
});
$('config-run').addEventListener('change', drawConfig);
$('samples-image').addEventListener('load', alignPrompts);
window.addEventListener('resize', () => {
  for (const [key, { plot }] of charts) {
    const container = document.querySelector<HTMLElement>(`[data-chart="${key}"] .plot`);
    if (container) plot.setSize({ width: Math.max(300, container.clientWidth), height: 240 });
  }
});
connect();
