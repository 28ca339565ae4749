// The sampling page's markup and the few rules it adds to the dashboard's style sheet (lib/dashboard/sampling.ts
// serves them, lib/dashboard/sampler.ts is its script). SA-Solver's fields take their bounds and defaults from its
// option table.
import { SA_SOLVER_SCHEMA, SA_TAU_INTERVAL } from '../sampling/sa-solver.js';

const { predictorOrder, correctorOrder, tau } = SA_SOLVER_SCHEMA;
const [tauLo, tauHi] = SA_TAU_INTERVAL;

// A number field of SA-Solver's (the query parameter `name`), shown with the solver.
const saField = (label: string, name: string, attributes: string) =>
  `<label>${label} <input id="${name}" name="${name}" type="number" ${attributes}></label>`;

export const SAMPLE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>diffusion-nft sampling</title>
<link rel="icon" href="/assets/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/dashboard.css">
<link rel="stylesheet" href="/sample/style.css">
</head>
<body>
<header>
  <h1>diffusion-nft <span>sampling in the browser (onnxruntime-web)</span></h1>
  <span id="status" class="status">loading…</span>
</header>
<main>
  <section class="card wide sampling">
    <h2>Sample a run's exported model <small>(model.onnx in the run folder, written by diffusion-nft export)</small></h2>
    <div class="controls">
      <label>model <select id="model"></select></label>
      <label>prompt <select id="prompt"></select></label>
      <label>seed <input id="seed" type="number" min="0" value="0"></label>
      <label>solver <select id="solver"><option>euler</option><option>heun</option><option selected>dpm2</option><option>sa-solver</option></select></label>
      <span id="sa-solver-options" class="sa-options" hidden>
        ${saField('predictor order', 'predictorOrder', `min="${predictorOrder.min}" max="${predictorOrder.max}" value="${predictorOrder.default}"`)}
        ${saField('corrector order', 'correctorOrder', `min="${correctorOrder.min}" max="${correctorOrder.max}" value="${correctorOrder.default}"`)}
        ${saField('τ', 'tau', `min="${tau.min}" max="${tau.max}" step="0.1" value="${tau.default}"`)}
        ${saField('τ from t', 'tauLo', `min="0" max="1" step="0.1" value="${tauLo}"`)}
        ${saField('τ to t', 'tauHi', `min="0" max="1" step="0.1" value="${tauHi}"`)}
      </span>
      <label>steps <input id="steps" type="number" min="1" max="200" value="10"></label>
      <label>samples <input id="count" type="number" min="1" max="64" value="8"></label>
      <label>guidance <input id="cfg" type="number" step="0.5" value="1"></label>
      <button id="run" disabled>sample</button>
    </div>
    <div class="grid-view"><canvas id="samples" width="0" height="0"></canvas></div>
    <p id="timing" class="muted"></p>
  </section>
</main>
<script type="module" src="/lib/dashboard/sampler.js"></script>
</body>
</html>
`;

export const SAMPLE_STYLE = `.sampling .controls { flex-wrap: wrap; align-items: flex-end; }
.sampling label { display: flex; flex-direction: column; gap: 2px; font-size: 12px; color: var(--muted); }
.sampling input[type=number] { width: 7em; font: inherit; }
.sampling canvas { image-rendering: pixelated; border-radius: 4px; }
.sampling .sa-options { display: flex; gap: inherit; align-items: flex-end; }
`;
