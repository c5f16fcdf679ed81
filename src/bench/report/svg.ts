/**
 * Scatter and line charts as SVG text (no plotting dependency), for the report's
 * AUROC-vs-cost plots and ROC curves. Same look as src/energy/plot.ts.
 */

export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Axis {
  min: number;
  max: number;
  log: boolean;
  label: string;
}

function ticks(a: Axis, n = 5): number[] {
  if (a.log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(a.min)); e <= Math.ceil(Math.log10(a.max)); e++) out.push(10 ** e);
    return out.filter((t) => t >= a.min * 0.999 && t <= a.max * 1.001);
  }
  const raw = (a.max - a.min) / n || 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  const step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  const out: number[] = [];
  for (let t = Math.ceil(a.min / step) * step; t <= a.max + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

function axisRange(values: number[], log: boolean, pad: number, fixed?: [number, number]): [number, number] {
  if (fixed) return fixed;
  const v = log ? values.filter((x) => x > 0) : values;
  if (v.length === 0) return log ? [0.1, 10] : [0, 1];
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (log) return [10 ** Math.floor(Math.log10(lo)), 10 ** Math.ceil(Math.log10(hi) + 1e-12)];
  if (hi === lo) {
    lo -= 1;
    hi += 1;
  }
  const d = (hi - lo) * pad;
  return [lo - d, hi + d];
}

const fmtTick = (t: number): string => (Math.abs(t) >= 1e4 || (Math.abs(t) < 1e-2 && t !== 0) ? t.toExponential(0) : String(Number(t.toPrecision(4))));

interface Frame {
  W: number;
  H: number;
  m: { l: number; r: number; t: number; b: number };
  x: Axis;
  y: Axis;
}

function project(f: Frame): { px: (v: number) => number; py: (v: number) => number } {
  const sx = (v: number): number => (f.x.log ? (Math.log10(v) - Math.log10(f.x.min)) / (Math.log10(f.x.max) - Math.log10(f.x.min)) : (v - f.x.min) / (f.x.max - f.x.min));
  const sy = (v: number): number => (f.y.log ? (Math.log10(v) - Math.log10(f.y.min)) / (Math.log10(f.y.max) - Math.log10(f.y.min)) : (v - f.y.min) / (f.y.max - f.y.min));
  return {
    px: (v) => f.m.l + sx(v) * (f.W - f.m.l - f.m.r),
    py: (v) => f.H - f.m.b - sy(v) * (f.H - f.m.t - f.m.b),
  };
}

function frameSvg(f: Frame, title: string): string[] {
  const { px, py } = project(f);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.W}" height="${f.H}" viewBox="0 0 ${f.W} ${f.H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${f.W}" height="${f.H}" fill="white"/>`,
    `<text x="${f.W / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
  for (const t of ticks(f.x)) {
    out.push(`<line x1="${px(t).toFixed(1)}" y1="${f.m.t}" x2="${px(t).toFixed(1)}" y2="${f.H - f.m.b}" stroke="#eee"/>`);
    out.push(`<text x="${px(t).toFixed(1)}" y="${f.H - f.m.b + 16}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of ticks(f.y)) {
    out.push(`<line x1="${f.m.l}" y1="${py(t).toFixed(1)}" x2="${f.W - f.m.r}" y2="${py(t).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${f.m.l - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  out.push(`<rect x="${f.m.l}" y="${f.m.t}" width="${f.W - f.m.l - f.m.r}" height="${f.H - f.m.t - f.m.b}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(f.m.l + f.W - f.m.r) / 2}" y="${f.H - 10}" text-anchor="middle">${escapeXml(f.x.label)}</text>`);
  out.push(`<text transform="translate(16 ${(f.m.t + f.H - f.m.b) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(f.y.label)}</text>`);
  return out;
}

export interface ScatterPoint {
  x: number;
  y: number;
  label: string;
  /** Legend group (one colour per series). */
  series: string;
  /** Drawn hollow: an estimate, not a measurement. */
  hollow?: boolean;
}

export function scatterSvg(o: { title: string; xLabel: string; yLabel: string; points: readonly ScatterPoint[]; logX?: boolean; yRange?: [number, number]; width?: number; height?: number }): string {
  const pts = o.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0));
  const [x0, x1] = axisRange(pts.map((p) => p.x), o.logX ?? false, 0.08);
  const [y0, y1] = axisRange(pts.map((p) => p.y), false, 0.08, o.yRange);
  const f: Frame = { W: o.width ?? 720, H: o.height ?? 460, m: { l: 64, r: 170, t: 34, b: 46 }, x: { min: x0, max: x1, log: o.logX ?? false, label: o.xLabel }, y: { min: y0, max: y1, log: false, label: o.yLabel } };
  const { px, py } = project(f);
  const out = frameSvg(f, o.title);
  const series = [...new Set(pts.map((p) => p.series))];
  for (const p of pts) {
    const c = COLORS[series.indexOf(p.series) % COLORS.length];
    out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="5" fill="${p.hollow ? 'white' : c}" stroke="${c}" stroke-width="2"><title>${escapeXml(p.label)}</title></circle>`);
    out.push(`<text x="${(px(p.x) + 7).toFixed(1)}" y="${(py(p.y) - 6).toFixed(1)}" font-size="10" fill="${c}">${escapeXml(p.label)}</text>`);
  }
  series.forEach((s, i) => {
    const y = f.m.t + 14 + 18 * i;
    out.push(`<circle cx="${f.W - f.m.r + 16}" cy="${y - 4}" r="5" fill="${COLORS[i % COLORS.length]}"/>`, `<text x="${f.W - f.m.r + 26}" y="${y}">${escapeXml(s)}</text>`);
  });
  if (pts.some((p) => p.hollow)) out.push(`<text x="${f.W - f.m.r + 8}" y="${f.m.t + 14 + 18 * series.length + 8}" font-size="10">hollow = estimated</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

export interface LineSeries {
  label: string;
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
}

export function lineChartSvg(o: { title: string; xLabel: string; yLabel: string; series: readonly LineSeries[]; xRange?: [number, number]; yRange?: [number, number]; diagonal?: boolean; width?: number; height?: number }): string {
  const xs = o.series.flatMap((s) => Array.from(s.xs));
  const ys = o.series.flatMap((s) => Array.from(s.ys));
  const [x0, x1] = axisRange(xs, false, 0.02, o.xRange);
  const [y0, y1] = axisRange(ys, false, 0.02, o.yRange);
  const f: Frame = { W: o.width ?? 720, H: o.height ?? 460, m: { l: 56, r: 300, t: 34, b: 46 }, x: { min: x0, max: x1, log: false, label: o.xLabel }, y: { min: y0, max: y1, log: false, label: o.yLabel } };
  const { px, py } = project(f);
  const out = frameSvg(f, o.title);
  if (o.diagonal) out.push(`<line x1="${px(x0)}" y1="${py(y0)}" x2="${px(x1)}" y2="${py(y1)}" stroke="#999" stroke-dasharray="4 4"/>`);
  o.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const d = Array.from(s.xs, (x, k) => `${k === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(s.ys[k]).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    const y = f.m.t + 14 + 18 * i;
    out.push(`<line x1="${f.W - f.m.r + 10}" y1="${y - 4}" x2="${f.W - f.m.r + 28}" y2="${y - 4}" stroke="${c}" stroke-width="2"/>`, `<text x="${f.W - f.m.r + 34}" y="${y}" font-size="11">${escapeXml(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
