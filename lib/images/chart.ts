// Line charts as SVG, for the score curves of runs: no dependency, readable in any browser.
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** y range (default: from the data, including 0, out to round ticks). */
  yMin?: number;
  yMax?: number;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
/** Text escaped for SVG content. */
export const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Round ticks from at most `low` to at least `high`, on the step of 1, 2 or 5 × 10^k nearest to a `count`-th of
 * the range.
 */
export function niceTicks(low: number, high: number, count = 5): { values: number[]; decimals: number } {
  const raw = Math.max(high - low, 1e-9) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const distance = (s: number) => Math.abs(Math.log(s / raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).reduce((a, b) => (distance(b) < distance(a) ? b : a));
  const first = Math.floor(low / step + 1e-9);
  const last = Math.ceil(high / step - 1e-9);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  // Rounded to the step's decimals, so that 0.1 + 0.2 reads 0.3.
  const values = Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toFixed(decimals)));
  return { values, decimals };
}

/** An SVG line chart of one or more series sharing the axes. */
export function lineChart(series: readonly Series[], o: ChartOptions): string {
  // The legend sits right of the plot, as wide as its longest name (about 7 px a character at 12 px).
  const right = Math.max(160, 40 + 7 * Math.max(0, ...series.map((s) => s.name.length)));
  const width = 480 + right;
  const height = 400;
  const left = 60;
  const top = 40;
  const bottom = 50;
  const all = series.flatMap((s) => s.points);
  // The axes end on round ticks that cover the data (and 0).
  const xTicks = niceTicks(Math.min(0, ...all.map((p) => p[0])), Math.max(1e-9, ...all.map((p) => p[0])));
  const yTicks = niceTicks(
    o.yMin ?? Math.min(0, ...all.map((p) => p[1])),
    o.yMax ?? Math.max(1e-9, ...all.map((p) => p[1])),
  );
  const [xMin, xMax] = [xTicks.values[0] as number, xTicks.values.at(-1) as number];
  const [yMin, yMax] = [yTicks.values[0] as number, yTicks.values.at(-1) as number];
  const sx = (x: number) => left + ((x - xMin) / (xMax - xMin)) * (width - left - right);
  const sy = (y: number) => height - bottom - ((y - yMin) / (yMax - yMin)) * (height - top - bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - right / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(o.title)}</text>`,
  ];
  for (const y of yTicks.values) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(yTicks.decimals)}</text>`);
  }
  for (const x of xTicks.values) {
    parts.push(
      `<text x="${sx(x)}" y="${height - bottom + 16}" text-anchor="middle">${x.toFixed(xTicks.decimals)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}" stroke="black"/>`,
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${height - bottom}" stroke="black"/>`,
    `<text x="${(left + width - right) / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length] as string;
    const path = s.points.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<path d="${path}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    // A dot at each measured point: evaluations are sparse, and the line between them is not data.
    for (const [x, y] of s.points) {
      parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${colour}"/>`);
    }
    parts.push(`<rect x="${width - right + 12}" y="${top + 18 * i}" width="14" height="4" fill="${colour}"/>`);
    parts.push(`<text x="${width - right + 32}" y="${top + 18 * i + 6}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
