import sharp from 'sharp';
import type { PowerSample } from './samplers/types.js';

/**
 * Power-over-time plot: an SVG string we build ourselves (no plotting dependency), rendered to PNG
 * with sharp. One line per (source, device); estimated series are dashed and say so in the legend.
 */

export interface PlotPhase {
  phase: string;
  startMs: number;
  endMs: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/** Bucket means, so a 14-hour trace at 10 Hz still renders quickly; the CSV keeps every sample. */
function decimate(ss: readonly PowerSample[], max: number): PowerSample[] {
  if (ss.length <= max) return [...ss];
  const k = Math.ceil(ss.length / max);
  const out: PowerSample[] = [];
  for (let i = 0; i < ss.length; i += k) {
    const b = ss.slice(i, i + k);
    const w = b.reduce((s, x) => s + (x.powerW as number), 0) / b.length;
    out.push({ ...b[Math.floor(b.length / 2)], powerW: w });
  }
  return out;
}

export function powerPlotSvg(samples: readonly PowerSample[], opts: { title?: string; phases?: readonly PlotPhase[]; width?: number; height?: number } = {}): string {
  const W = opts.width ?? 900;
  const H = opts.height ?? 420;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pts = samples.filter((s) => s.powerW !== null);
  const series = new Map<string, PowerSample[]>();
  for (const s of pts) {
    const key = `${s.method}|${s.device}`;
    if (!series.has(key)) series.set(key, []);
    series.get(key)!.push(s);
  }
  // Loops, not Math.min(...xs): spreading half a million samples overflows the call stack.
  let t0 = Infinity;
  let t1 = -Infinity;
  let yMaxData = 0;
  for (const s of pts) {
    t0 = Math.min(t0, s.tMs);
    t1 = Math.max(t1, s.tMs);
    yMaxData = Math.max(yMaxData, s.powerW as number);
  }
  for (const p of opts.phases ?? []) {
    t0 = Math.min(t0, p.startMs);
    t1 = Math.max(t1, p.endMs);
  }
  const xMax = Number.isFinite(t1 - t0) && t1 > t0 ? (t1 - t0) / 1000 : 1;
  const yStep = niceStep(yMaxData > 0 ? yMaxData : 1, 5);
  const yMax = Math.max(yStep, Math.ceil((yMaxData * 1.05) / yStep) * yStep);
  const xStep = niceStep(xMax, 8);
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const X = (tMs: number): number => m.l + (((tMs - t0) / 1000) / xMax) * pw;
  const Y = (w: number): number => m.t + ph - (w / yMax) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Lato, sans-serif">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  for (const [i, p] of (opts.phases ?? []).entries()) {
    const x0 = X(p.startMs);
    const x1 = X(p.endMs);
    out.push(`<rect x="${x0.toFixed(1)}" y="${m.t}" width="${Math.max(0, x1 - x0).toFixed(1)}" height="${ph}" fill="${i % 2 ? '#f3f3f3' : '#eaf2fb'}"/>`);
    out.push(`<text x="${(x0 + 4).toFixed(1)}" y="${m.t + 14}" font-size="11" fill="#555">${esc(p.phase)}</text>`);
  }
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.l - 6}" y="${(Y(y) + 4).toFixed(1)}" font-size="11" text-anchor="end">${+y.toPrecision(6)}</text>`);
  }
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    const px = m.l + (x / xMax) * pw;
    out.push(`<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#333"/>`);
    out.push(`<text x="${px.toFixed(1)}" y="${m.t + ph + 17}" font-size="11" text-anchor="middle">${+x.toPrecision(6)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" font-size="12" text-anchor="middle">time (s)</text>`);
  out.push(`<text x="14" y="${m.t + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${m.t + ph / 2})">power (W)</text>`);
  out.push(`<text x="${m.l}" y="22" font-size="14">${esc(opts.title ?? 'Power over time')}</text>`);
  let k = 0;
  for (const [key, all] of series) {
    const [method, device] = key.split('|');
    const ss = decimate(all, 2000);
    const color = COLORS[k % COLORS.length];
    const estimated = method === 'estimated';
    const d = ss.map((s) => `${X(s.tMs).toFixed(1)},${Y(s.powerW as number).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${d}" fill="none" stroke="${color}" stroke-width="1.5"${estimated ? ' stroke-dasharray="5,3"' : ''}/>`);
    const ly = m.t + 14 + k * 15;
    out.push(`<line x1="${W - m.r - 230}" x2="${W - m.r - 212}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${estimated ? ' stroke-dasharray="5,3"' : ''}/>`);
    out.push(`<text x="${W - m.r - 206}" y="${ly}" font-size="11">${esc(`${device} (${estimated ? 'ESTIMATED' : method})`)}</text>`);
    k++;
  }
  if (series.size === 0) out.push(`<text x="${m.l + pw / 2}" y="${m.t + ph / 2}" font-size="13" text-anchor="middle" fill="#888">no power samples</text>`);
  out.push('</svg>');
  return out.join('\n');
}

export async function writePowerPlotPng(path: string, svg: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(path);
}
