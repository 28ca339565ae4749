// Line charts as SVG, for the score curves of runs: no dependency, readable in any browser.
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** y range (default: from the data, including 0). */
  yMin?: number;
  yMax?: number;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const escapeXml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ticks(low: number, high: number, count = 5): number[] {
  const step = (high - low) / count;
  return Array.from({ length: count + 1 }, (_, i) => low + i * step);
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
  const xMax = Math.max(1e-9, ...all.map((p) => p[0]));
  const xMin = Math.min(0, ...all.map((p) => p[0]));
  const yMin = o.yMin ?? Math.min(0, ...all.map((p) => p[1]));
  const yMax = o.yMax ?? Math.max(yMin + 1e-9, ...all.map((p) => p[1]));
  const sx = (x: number) => left + ((x - xMin) / (xMax - xMin)) * (width - left - right);
  const sy = (y: number) => height - bottom - ((y - yMin) / (yMax - yMin)) * (height - top - bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - right / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(o.title)}</text>`,
  ];
  for (const y of ticks(yMin, yMax)) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  for (const x of ticks(xMin, xMax)) {
    parts.push(
      `<text x="${sx(x)}" y="${height - bottom + 16}" text-anchor="middle">${x.toFixed(x >= 100 ? 0 : 1)}</text>`,
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
    parts.push(`<rect x="${width - right + 12}" y="${top + 18 * i}" width="14" height="4" fill="${colour}"/>`);
    parts.push(`<text x="${width - right + 32}" y="${top + 18 * i + 6}">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
