// The SVG line charts of the run curves: round axis ticks that cover the data, and a dot per measured point.
import { describe, expect, it } from 'vitest';
import { lineChart, niceTicks } from '../lib/images/chart.js';

describe('line charts', () => {
  it('puts ticks on round steps of 1, 2 or 5 × 10^k, about five, that cover the range', () => {
    expect(niceTicks(0, 488)).toEqual({ values: [0, 100, 200, 300, 400, 500], decimals: 0 });
    expect(niceTicks(0, 1)).toEqual({ values: [0, 0.2, 0.4, 0.6, 0.8, 1], decimals: 1 });
    expect(niceTicks(0, 0.35)).toEqual({ values: [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35], decimals: 2 });
    expect(niceTicks(-3, 7)).toEqual({ values: [-4, -2, 0, 2, 4, 6, 8], decimals: 0 });
    expect(niceTicks(0, 1200).values).toEqual([0, 200, 400, 600, 800, 1000, 1200]);
    expect(niceTicks(0, 0.013)).toEqual({ values: [0, 0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.014], decimals: 3 });
  });

  it('draws every series with a dot per point, a legend and round axis labels', () => {
    const svg = lineChart(
      [
        {
          name: 'DiffusionNFT',
          points: [
            [0, 0.2],
            [240, 0.25],
            [488, 0.33],
          ],
        },
        { name: 'FlowGRPO', points: [[0, 0.2]] },
      ],
      { title: 'strict <test>', xLabel: 'training wall-clock (s)', yLabel: 'strict score', yMin: 0, yMax: 1 },
    );
    expect(svg.match(/<circle /g)).toHaveLength(4);
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain('>DiffusionNFT</text>');
    expect(svg).toContain('strict &lt;test&gt;');
    for (const label of ['>0<', '>100<', '>500<', '>0.0<', '>1.0<']) expect(svg).toContain(label);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });
});
