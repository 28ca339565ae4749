// The dashboard page's markup, style sheet and icon; its script is client.ts, its charts uPlot.

export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffusion-nft dashboard</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/dashboard.css">
</head>
<body>
<header>
  <h1>diffusion-nft <span>dashboard</span></h1>
  <div class="controls">
    <span>x axis</span>
    <label><input type="radio" name="x" value="epoch" checked> epochs</label>
    <label><input type="radio" name="x" value="elapsed"> training time</label>
  </div>
  <span id="status" class="status">connecting…</span>
</header>
<main>
  <section class="card wide">
    <h2>Runs <small>(colours as in the charts)</small></h2>
    <table id="runs"><thead><tr><th></th><th>run</th><th>trainer</th><th>phase</th><th>toward the target</th>
      <th>time left</th><th>epochs</th><th>training time</th><th>strict (latest / best)</th>
      <th>test reward (latest / best)</th><th>last record</th></tr></thead><tbody></tbody></table>
  </section>
  <div id="charts" class="charts"></div>
  <section id="histogram-card" class="card" hidden>
    <h2>Optimality probability r <small>(DiffusionNFT, latest epoch: counts in 10 bins of [0, 1])</small></h2>
    <div id="histograms" class="histograms"></div>
  </section>
  <section id="categories-card" class="card wide" hidden>
    <h2>Strict score by prompt category <small>(latest evaluation)</small></h2>
    <table id="categories"></table>
  </section>
  <section id="samples-card" class="card wide" hidden>
    <h2>Samples <small id="samples-label"></small></h2>
    <div class="controls">
      <select id="samples-run" aria-label="run"></select>
      <input id="samples-slider" type="range" min="0" max="0" value="0" aria-label="evaluation">
    </div>
    <div class="grid-view"><img id="samples-image" alt="sample grid"></div>
  </section>
  <section id="config-card" class="card wide" hidden>
    <h2>Config</h2>
    <div class="controls"><select id="config-run" aria-label="run"></select></div>
    <pre id="config"></pre>
  </section>
</main>
<script src="/assets/uPlot.iife.min.js"></script>
<script type="module" src="/assets/client.js"></script>
</body>
</html>
`;

export const STYLE = `:root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --bg: #f5f6f8; --card: #fff; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 12px 24px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header h1 span { font-weight: 400; color: #aab2c5; }
header .controls { margin-left: auto; }
.controls { display: flex; align-items: center; gap: 12px; }
.status { font-size: 12px; padding: 2px 10px; border-radius: 10px; background: #4a5163; }
.status.live { background: #2e7d4f; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 16px; padding: 16px 24px; }
.charts { display: contents; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
.card.wide { grid-column: 1 / -1; }
.card h2 { margin: 0 0 8px; font-size: 14px; font-weight: 600; }
.card h2 small, .muted { color: var(--muted); font-weight: 400; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 10px 4px 0; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 500; color: var(--muted); font-size: 12px; }
.chip { display: inline-block; width: 12px; height: 12px; border-radius: 3px; }
.error { color: #b3261e; }
.grid-view { display: flex; gap: 12px; align-items: flex-start; margin-top: 8px; overflow-x: auto; }
.references { margin: 4px 0 0; padding: 0; list-style: none; font-size: 12px; }
.histograms { display: flex; flex-wrap: wrap; gap: 16px; }
.histograms figure { margin: 0; width: 200px; }
.histograms svg { width: 200px; height: 80px; border-bottom: 1px solid var(--line); }
.histograms figcaption { font-size: 12px; color: var(--muted); }
td.phase.finished { color: var(--muted); }
.grid-view img { image-rendering: pixelated; border-radius: 4px; background: #000; }
#samples-slider { width: 320px; }
pre { margin: 0; max-height: 360px; overflow: auto; font-size: 12px; background: var(--bg); padding: 8px;
  border-radius: 6px; }
select { font: inherit; padding: 2px 4px; }
.u-legend { font-size: 12px; }
`;

export const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1d2330"/><path d="M2 12 L6 8 L9 10 L14 3" stroke="#5ab0ff" stroke-width="2" fill="none"/></svg>
`;
