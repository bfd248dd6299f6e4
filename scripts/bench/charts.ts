/**
 * The benches' figures as pictures: self-contained HTML pages of inline SVG (no script, no CDN, so a page opens
 * anywhere and a screenshot of it is the same everywhere), and a PNG of each taken with Debian's Chromium through
 * playwright-core when it is there. Pure functions render; `writeReport` writes.
 */
import { writeFileSync } from 'node:fs';
import { hasCommand } from '../processes.ts';

export interface Bar {
  readonly label: string;
  /** The figure as a share of its goal: ≥ 1 meets it. */
  readonly score: number | null;
  readonly caption: string;
  readonly pass: boolean | null;
}

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly logX?: boolean;
  readonly logY?: boolean;
  /** Tick labels for x (value → text); default: the values themselves. */
  readonly xTicks?: ReadonlyArray<readonly [number, string]>;
  /** A horizontal line to compare against, e.g. the 500 ms SLO. */
  readonly limit?: { readonly y: number; readonly label: string };
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f'];
const escapeXml = (text: string) =>
  text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
const fixed = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(1) : n.toPrecision(2));

/** Horizontal bars of each target's share of its goal, with the goal (1×) as a line. */
export function barChart(title: string, bars: readonly Bar[], goalLabel = 'goal'): string {
  const rowHeight = 26;
  // Wide enough for the longest label at the font's average width (≈ 7 px a character at 13 px).
  const labelWidth = Math.min(600, 16 + 7 * Math.max(10, ...bars.map((b) => b.label.length)));
  const plotWidth = 380;
  const top = 34;
  const height = top + bars.length * rowHeight + 30;
  const max = Math.max(2, ...bars.map((b) => b.score ?? 0));
  const x = (score: number) => labelWidth + (Math.min(score, max) / max) * plotWidth;
  const rows = bars.map((bar, i) => {
    const y = top + i * rowHeight;
    const colour = bar.pass === null ? '#999' : bar.pass ? '#2ca02c' : '#d62728';
    const width = bar.score === null ? 0 : Math.max(1, x(bar.score) - labelWidth);
    return [
      `<text x="${labelWidth - 8}" y="${y + 17}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect class="bar" x="${labelWidth}" y="${y + 4}" width="${width.toFixed(1)}" height="${rowHeight - 8}" fill="${colour}"/>`,
      `<text x="${labelWidth + width + 6}" y="${y + 17}">${escapeXml(bar.caption)}</text>`,
    ].join('');
  });
  const goal = x(1);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 170}" height="${height}" font-family="sans-serif" font-size="13">
<text x="8" y="20" font-weight="bold" font-size="15">${escapeXml(title)}</text>
${rows.join('\n')}
<line x1="${goal}" y1="${top}" x2="${goal}" y2="${height - 24}" stroke="#333" stroke-dasharray="4 3"/>
<text x="${goal}" y="${height - 8}" text-anchor="middle">${escapeXml(goalLabel)}</text>
<line x1="${labelWidth}" y1="${top}" x2="${labelWidth}" y2="${height - 24}" stroke="#333"/>
</svg>`;
}

/** Lines of (x, y) points on linear or log axes, with a legend and an optional limit line. */
export function lineChart(chart: LineChart): string {
  const [width, height, left, right, top, bottom] = [760, 380, 70, 190, 36, 48];
  const points = chart.series.flatMap((s) => s.points).filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py));
  const tx = (v: number) => (chart.logX ? Math.log10(Math.max(v, 1e-9)) : v);
  const ty = (v: number) => (chart.logY ? Math.log10(Math.max(v, 1e-6)) : v);
  const xs = points.map(([px]) => tx(px));
  const ys = [...points.map(([, py]) => ty(py)), ...(chart.limit ? [ty(chart.limit.y)] : [])];
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const [y0raw, y1raw] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  const y0 = chart.logY ? Math.floor(y0raw) : Math.min(0, y0raw);
  const y1 = chart.logY ? Math.ceil(y1raw) : y1raw * 1.1 || 1;
  const sx = (v: number) => left + ((tx(v) - x0) / (x1 - x0 || 1)) * (width - left - right);
  const sy = (v: number) => height - bottom - ((ty(v) - y0) / (y1 - y0 || 1)) * (height - top - bottom);
  const yTicks = chart.logY
    ? Array.from({ length: y1 - y0 + 1 }, (_, i) => 10 ** (y0 + i))
    : Array.from({ length: 6 }, (_, i) => (y1 / 5) * i);
  const xTicks = chart.xTicks ?? [...new Set(points.map(([px]) => px))].map((v) => [v, fixed(v)] as const);
  const grid = [
    ...yTicks.map(
      (v) =>
        `<line x1="${left}" x2="${width - right}" y1="${sy(v)}" y2="${sy(v)}" stroke="#ddd"/><text x="${left - 6}" y="${sy(v) + 4}" text-anchor="end">${fixed(v)}</text>`,
    ),
    ...xTicks.map(
      ([v, label]) => `<text x="${sx(v)}" y="${height - bottom + 16}" text-anchor="middle">${escapeXml(label)}</text>`,
    ),
  ];
  const lines = chart.series.map((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const path = s.points
      .filter(([px, py]) => Number.isFinite(px) && Number.isFinite(py))
      .map(([px, py]) => `${sx(px).toFixed(1)},${sy(py).toFixed(1)}`)
      .join(' ');
    return `<polyline class="series" points="${path}" fill="none" stroke="${colour}" stroke-width="2"/>
<rect x="${width - right + 14}" y="${top + i * 18}" width="12" height="12" fill="${colour}"/><text x="${width - right + 32}" y="${top + i * 18 + 11}">${escapeXml(s.name)}</text>`;
  });
  const limit = chart.limit
    ? `<line x1="${left}" x2="${width - right}" y1="${sy(chart.limit.y)}" y2="${sy(chart.limit.y)}" stroke="#d62728" stroke-dasharray="6 4"/><text x="${width - right - 4}" y="${sy(chart.limit.y) - 5}" text-anchor="end" fill="#d62728">${escapeXml(chart.limit.label)}</text>`
    : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<text x="8" y="20" font-weight="bold" font-size="15">${escapeXml(chart.title)}</text>
${grid.join('\n')}
<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#333"/>
<line x1="${left}" y1="${top}" x2="${left}" y2="${height - bottom}" stroke="#333"/>
<text x="${(left + width - right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>
<text transform="translate(16 ${(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(chart.yLabel)}</text>
${limit}
${lines.join('\n')}
</svg>`;
}

/** A page of figures: a heading, a line of context, the charts. */
export function page(title: string, subtitle: string, charts: readonly string[]): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222;background:#fff}figure{margin:0 0 28px}p{color:#555}</style>
</head><body>
<h1>${escapeXml(title)}</h1>
<p>${escapeXml(subtitle)}</p>
${charts.map((svg) => `<figure>${svg}</figure>`).join('\n')}
</body></html>
`;
}

/**
 * Writes `<base>.html` and, when Debian's Chromium is there, `<base>.png` (the page as the browser draws it).
 * Returns the paths written; a missing browser is said, not fatal.
 */
export async function writeReport(base: string, html: string, say: (line: string) => void): Promise<string[]> {
  writeFileSync(`${base}.html`, html);
  const written = [`${base}.html`];
  if (!hasCommand('chromium')) {
    say(`no PNG of ${base}.html: Debian's chromium is not installed (apt-get install chromium)`);
    return written;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  try {
    const tab = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    await tab.goto(`file://${base}.html`);
    await tab.screenshot({ path: `${base}.png`, fullPage: true });
    written.push(`${base}.png`);
  } finally {
    await browser.close();
  }
  return written;
}

/** Percentile → position on a latency-by-percentile axis (HdrHistogram's): 90 → 1, 99 → 2, 99.9 → 3, … */
export const percentileAxis = (p: number): number => (p >= 100 ? 5 : -Math.log10(1 - p / 100));
export const PERCENTILE_TICKS: ReadonlyArray<readonly [number, string]> = [
  [0, 'p0'],
  [percentileAxis(50), 'p50'],
  [1, 'p90'],
  [2, 'p99'],
  [3, 'p99.9'],
  [4, 'p99.99'],
  [5, 'max'],
];
