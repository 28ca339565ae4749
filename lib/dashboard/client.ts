/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The dashboard page's script (runs in the browser, served as /assets/client.js): follows the server's event stream
// and draws the runs' curves with uPlot (loaded by the page as a global), their per-category scores, sample grids
// and configs.
import type UPlot from 'uplot';
import type {
  EpochRecord,
  EvaluationRecord,
  MetricsRecord,
  ProgressRecord,
  ReferenceRecord,
} from '../metrics/records.js';
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
  /** The value of a record (with `parts`, none). */
  value?: (r: Fields) => number | null | undefined;
  /** A curve for each name of this record field (each reward's mean) instead of one for `value`. */
  parts?: (r: Fields) => Record<string, number> | undefined;
  /**
   * 'unit': the y axis spans at least [0, 1] (scores, rewards, fractions), so that the noise of an evaluation is
   * not zoomed into what looks like a collapse; otherwise it fits the data.
   */
  range?: 'unit';
  /** The reference records' field drawn as lines, each with its standard error as a band. */
  reference?: 'strict' | 'reward';
}

const CHARTS: ChartSpec[] = [
  {
    key: 'strict',
    title: 'Strict score (test prompts, no CFG)',
    kind: 'evaluation',
    value: (r) => r.strict,
    range: 'unit',
    reference: 'strict',
  },
  {
    key: 'testReward',
    title: 'Test reward (evaluation)',
    kind: 'evaluation',
    value: (r) => r.reward,
    range: 'unit',
    reference: 'reward',
  },
  { key: 'reward', title: 'Train reward (rollouts)', kind: 'epoch', value: (r) => r.reward, range: 'unit' },
  {
    key: 'rewards',
    title: 'Train reward by reward function (rollouts)',
    kind: 'epoch',
    parts: (r) => r.rewards,
    range: 'unit',
  },
  { key: 'loss', title: 'Loss', kind: 'epoch', value: (r) => r.loss },
  { key: 'eta', title: 'η (soft update of θ_old, DiffusionNFT)', kind: 'epoch', value: (r) => r.eta, range: 'unit' },
  { key: 'gradNorm', title: 'Gradient norm (before clipping)', kind: 'epoch', value: (r) => r.gradNorm },
  { key: 'approxKl', title: 'Approximate KL (likelihood methods)', kind: 'epoch', value: (r) => r.approxKl },
  {
    key: 'clipFraction',
    title: 'Clip fraction (likelihood methods, DGPO)',
    kind: 'epoch',
    value: (r) => r.clipFraction,
    range: 'unit',
  },
  { key: 'ratioMean', title: 'Mean ratio (likelihood methods)', kind: 'epoch', value: (r) => r.ratioMean },
  { key: 'windowStart', title: 'SDE window start (Fast, MixGRPO)', kind: 'epoch', value: (r) => r.windowStart },
  { key: 'fm', title: 'Flow-matching error (AWM)', kind: 'epoch', value: (r) => r.fm },
  { key: 'emaKl', title: 'KL to the EMA anchor (AWM)', kind: 'epoch', value: (r) => r.emaKl },
  { key: 'weightMean', title: 'Group weight σ(S_g) (DGPO)', kind: 'epoch', value: (r) => r.weightMean, range: 'unit' },
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
const references = (run: RunSnapshot) => run.records.filter((r): r is ReferenceRecord => r.kind === 'reference');
/** The run's latest progress record: its phase, target and time left as the job wrote them. */
const progressOf = (run: RunSnapshot) => run.records.filter((r): r is ProgressRecord => r.kind === 'progress').at(-1);
// Whether a process holds each run, by run id, as the server last said (its heartbeat, lib/metrics/heartbeat.ts).
const held = new Map<number, boolean>();
/** Whether a run's job stopped short of its end: a phase other than 'finished' last, and no process holds it. */
const stopped = (run: RunSnapshot) => {
  const phase = progressOf(run)?.phase;
  return phase !== undefined && phase !== 'finished' && held.get(run.id) === false;
};
/** Whether a run is going on: its job has written a phase, not yet 'finished', and its process is there. */
const running = (run: RunSnapshot) => {
  const phase = progressOf(run)?.phase;
  return phase !== undefined && phase !== 'finished' && !stopped(run);
};
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

/** A curve: its label and x and y values, ordered by x. */
interface Curve {
  run: RunSnapshot;
  label: string;
  /** Which of the run's curves on the chart (0 for the first): later ones are dashed. */
  index: number;
  xs: number[];
  ys: number[];
}

/** The curves of a run on a chart: one, or with `parts` one for each name (e.g. each reward). */
function curves(run: RunSnapshot, spec: ChartSpec): Curve[] {
  const byName = new Map<string, Curve>();
  const add = (name: string, r: Fields, y: unknown) => {
    if (typeof y !== 'number' || !Number.isFinite(y)) return;
    let c = byName.get(name);
    if (c === undefined) {
      c = { run, label: spec.parts ? `${run.name}: ${name}` : run.name, index: byName.size, xs: [], ys: [] };
      byName.set(name, c);
    }
    c.xs.push(xAxis === 'epoch' ? r.epoch : r.elapsed);
    c.ys.push(y);
  };
  for (const r of run.records as Fields[]) {
    if (r.kind !== spec.kind) continue;
    if (spec.parts) for (const [name, y] of Object.entries(spec.parts(r) ?? {})) add(name, r, y);
    else add('', r, spec.value?.(r));
  }
  return [...byName.values()];
}

/** The reference lines of a chart: each run's reference records, the value of the chart's field and its error. */
function referenceLines(spec: ChartSpec): { run: RunSnapshot; label: string; value: number; error: number }[] {
  const field = spec.reference;
  if (field === undefined) return [];
  return [...runs.values()].flatMap((run) =>
    references(run).flatMap((r) => {
      const value = r[field];
      if (typeof value !== 'number') return [];
      return [{ run, label: r.label, value, error: r.standardError?.[field] ?? 0 }];
    }),
  );
}

const referencesOf = new Map<string, ReturnType<typeof referenceLines>>();

// Draws the chart's reference lines on its canvas: a dashed line at each score and a band of ± its standard error.
function drawReferences(key: string, u: UPlot): void {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  for (const line of referencesOf.get(key) ?? []) {
    const y = u.valToPos(line.value, 'y', true);
    const lo = u.valToPos(line.value - line.error, 'y', true);
    const hi = u.valToPos(line.value + line.error, 'y', true);
    ctx.fillStyle = `${colour(line.run)}22`;
    ctx.fillRect(left, hi, width, lo - hi);
    ctx.strokeStyle = colour(line.run);
    ctx.setLineDash(line.label.includes('CFG') && !line.label.includes('no CFG') ? [2, 4] : [8, 4]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(left + width, y);
    ctx.stroke();
  }
  ctx.restore();
}

function drawChart(spec: ChartSpec, container: HTMLElement): void {
  const list = [...runs.values()];
  const shownCurves = list.flatMap((run) => curves(run, spec)).filter((c) => c.xs.length > 0);
  const points = shownCurves.reduce((sum, c) => sum + c.xs.length, 0);
  const card = container.closest('.card') as HTMLElement;
  card.hidden = points === 0;
  card.dataset.points = String(points);
  if (points === 0) return;
  card.dataset.runs = String(new Set(shownCurves.map((c) => c.run.id)).size);
  card.dataset.series = String(shownCurves.length);
  const lines = referenceLines(spec);
  referencesOf.set(spec.key, lines);
  card.dataset.references = String(lines.length);
  const legend = card.querySelector('.references') as HTMLElement;
  legend.replaceChildren(
    ...lines.map((line) => {
      const item = element('li', `${line.run.name}: ${line.label} ${line.value.toFixed(3)} ± ${line.error.toFixed(3)}`);
      item.style.color = colour(line.run);
      return item;
    }),
  );
  const data = uPlot.join(shownCurves.map((c) => [c.xs, c.ys]) as UPlot.AlignedData[]);
  const signature = `${xAxis}|${shownCurves.map((c) => c.label).join(',')}`;
  const existing = charts.get(spec.key);
  if (existing?.signature === signature) {
    existing.plot.setData(data);
    showRange(card, existing.plot);
    return;
  }
  existing?.plot.destroy();
  const sparse = spec.kind === 'evaluation';
  // A unit range grows to hold the data and the reference bands, never shrinks below [0, 1].
  const unitRange: UPlot.Range.Function = (_u, min, max) => {
    const bands = (referencesOf.get(spec.key) ?? []).flatMap((l) => [l.value - l.error, l.value + l.error]);
    return [Math.min(0, min, ...bands), Math.max(1, max, ...bands)];
  };
  const plot = new uPlot(
    {
      width: Math.max(300, container.clientWidth),
      height: 240,
      scales: { x: { time: false }, ...(spec.range === 'unit' ? { y: { range: unitRange } } : {}) },
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
        ...shownCurves.map((c) => ({
          label: c.label,
          stroke: colour(c.run),
          width: 2,
          dash: c.index === 0 ? undefined : [6 * c.index, 3],
          spanGaps: true,
          points: { show: sparse, size: 6 },
          value: (_u: UPlot, v: number | null) =>
            v === null ? '–' : Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(4),
        })),
      ],
      hooks: { draw: [(u) => drawReferences(spec.key, u)] },
    },
    data,
    container,
  );
  charts.set(spec.key, { plot, signature });
  showRange(card, plot);
}

// The y axis's range, on the card for the tests.
function showRange(card: HTMLElement, plot: UPlot): void {
  card.dataset.yRange = `${plot.scales.y?.min},${plot.scales.y?.max}`;
}

/** DiffusionNFT's histogram of the optimality probability r at each run's latest epoch that has one: 10 bars. */
function drawHistograms(): void {
  const latest = [...runs.values()].flatMap((run) => {
    const last = epochs(run)
      .filter((r) => Array.isArray(r.rHistogram))
      .at(-1);
    return last ? [{ run, last }] : [];
  });
  const card = $('histogram-card');
  card.hidden = latest.length === 0;
  card.dataset.runs = String(latest.length);
  const root = $('histograms');
  root.replaceChildren(
    ...latest.map(({ run, last }) => {
      const counts = last.rHistogram as number[];
      const top = Math.max(1, ...counts);
      const figure = element('figure', '', { 'data-run': String(run.id) });
      const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
      svg.setAttribute('viewBox', '0 0 200 80');
      counts.forEach((count, i) => {
        const bar = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
        const h = (76 * count) / top;
        bar.setAttribute('x', String(i * 20 + 1));
        bar.setAttribute('y', String(78 - h));
        bar.setAttribute('width', '18');
        bar.setAttribute('height', String(h));
        bar.setAttribute('fill', colour(run));
        const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
        title.textContent = `r in [${(i / 10).toFixed(1)}, ${((i + 1) / 10).toFixed(1)}): ${count}`;
        bar.append(title);
        svg.append(bar);
      });
      figure.append(svg, element('figcaption', `${run.name}, epoch ${last.epoch} (r from 0 to 1)`));
      return figure;
    }),
  );
}

function drawCharts(): void {
  const root = $('charts');
  for (const spec of CHARTS) {
    let container = root.querySelector<HTMLElement>(`[data-chart="${spec.key}"] .plot`);
    if (container === null) {
      const card = element('section', '', { class: 'card', 'data-chart': spec.key });
      card.append(element('h2', spec.title));
      container = element('div', '', { class: 'plot' });
      card.append(container, element('ul', '', { class: 'references' }));
      root.append(card);
    }
    drawChart(spec, container);
  }
}

/** The phase, the progress toward the target and the time left of a run, from its latest progress record. */
function progressCells(run: RunSnapshot): [string, string, string] {
  const p = progressOf(run);
  if (p === undefined) return [run.records.length === 0 ? 'waiting' : '–', '–', '–'];
  const t = p.target;
  let toward = '–';
  if (t !== undefined) {
    const pct = `${Math.round((100 * Math.min(t.done, t.total)) / t.total)}%`;
    toward =
      t.unit === 'epochs'
        ? `${pct} (${t.done} of ${t.total} epochs)`
        : `${pct} (${duration(t.done)} of ${duration(t.total)} training)`;
  }
  if (p.phase === 'finished') return ['finished', toward, '–'];
  if (stopped(run)) return ['stopped', toward, '–'];
  // The estimate as written, less the time since.
  const since = p.time === undefined ? 0 : (Date.now() - Date.parse(p.time)) / 1000;
  const left = p.secondsLeft === undefined ? '?' : `≈ ${duration(Math.max(0, p.secondsLeft - since))}`;
  return [p.phase, toward, left];
}

function drawRunTable(): void {
  const body = $('runs').querySelector('tbody') as HTMLElement;
  body.replaceChildren();
  for (const run of runs.values()) {
    const evals = evaluations(run);
    const last = evals.at(-1);
    // The best of the values present ('–' when no evaluation has one).
    const best = (f: (r: EvaluationRecord) => number | undefined) => {
      const values = evals.map(f).filter((v): v is number => typeof v === 'number');
      return values.length > 0 ? Math.max(...values) : undefined;
    };
    const start = run.records.filter((r) => r.kind === 'start').at(-1);
    const lastEpoch = epochs(run).at(-1);
    const [phase, toward, left] = progressCells(run);
    const row = element('tr', '', { 'data-run': String(run.id), 'data-phase': phase });
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
      element('td', phase, { class: `phase ${phase}` }),
      element('td', toward, { class: 'toward' }),
      element('td', left, { class: 'left' }),
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
  // The grid carries each row's prompt beside it; the page does not print them again.
  image.alt = `sample grid, a row for each prompt: ${shown.grid.prompts.join('; ')}`;
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
  drawStatus();
  drawCharts();
  drawHistograms();
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

let connected = false;
let events: EventSource | undefined;

// The badge: 'live' while some run is going on; once none is, 'stopped' if a run's process went before its end (killed,
// crashed), else 'finished' if a run's job ended (a page whose server has gone with its job stops reconnecting
// then); 'waiting' before any run has written.
function drawStatus(): void {
  const status = $('status');
  const list = [...runs.values()];
  const live = list.some(running);
  const ended = list.some((run) => progressOf(run)?.phase === 'finished');
  const quiet = list.every((r) => r.records.length === 0) ? 'waiting' : 'idle';
  const text = live ? 'live' : list.some(stopped) ? 'stopped' : ended ? 'finished' : quiet;
  status.textContent = connected || !live ? text : 'reconnecting…';
  status.className = `status ${connected && live ? 'live' : ''}`.trim();
  if (!connected && !live) events?.close();
}

function connect(): void {
  events = new EventSource('/events');
  events.addEventListener('open', () => {
    connected = true;
    drawStatus();
  });
  events.addEventListener('error', () => {
    connected = false;
    drawStatus();
  });
  events.addEventListener('runs', (event) => {
    const list = JSON.parse((event as MessageEvent).data) as { id: number }[];
    for (const id of [...runs.keys()]) if (!list.some((r) => r.id === id)) runs.delete(id);
  });
  events.addEventListener('held', (event) => {
    const { id, held: isHeld } = JSON.parse((event as MessageEvent).data) as { id: number; held: boolean };
    held.set(id, isHeld);
    schedule();
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
window.addEventListener('resize', () => {
  for (const [key, { plot }] of charts) {
    const container = document.querySelector<HTMLElement>(`[data-chart="${key}"] .plot`);
    if (container) plot.setSize({ width: Math.max(300, container.clientWidth), height: 240 });
  }
});
// The time left counts down between records.
setInterval(() => {
  if (runs.size > 0) drawRunTable();
}, 1000);
connect();
