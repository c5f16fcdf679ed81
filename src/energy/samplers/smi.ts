import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  maxOrNull,
  mean,
  trapezoidJ,
  type DeviceWindow,
  type PowerSample,
  type PowerSampler,
  type Probe,
  type SamplerMark,
  type SamplerWindow,
} from './types.js';

/**
 * GPU power trace from one long-lived `nvidia-smi --query-gpu=... -lms <interval>` per run, every
 * GPU. Energy is the trapezoidal integral of power over the device timestamps ('smi-power-integral').
 *
 * Field choice: only fields the installed driver lists in `--help-query-gpu` are requested. We
 * integrate `power.draw.instant` when the driver has it, because on Ampere and later plain
 * `power.draw` is a one-second moving average (it lags and smooths short phases); older drivers
 * only have `power.draw`, which is then used and said so in the note.
 */

export const SMI_FIELDS = ['timestamp', 'index', 'power.draw.instant', 'power.draw', 'utilization.gpu', 'memory.used', 'memory.total'] as const;
export type SmiField = (typeof SMI_FIELDS)[number];

export interface SmiOptions {
  /** Executable to run; default 'nvidia-smi' from PATH. */
  command?: string;
  /** -lms sampling period, default 100 ms. */
  intervalMs?: number;
}

/** Field names from `nvidia-smi --help-query-gpu`: the quoted names at the start of a line. */
export function parseHelpQueryGpu(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('"')) continue;
    for (const m of line.matchAll(/"([A-Za-z0-9_.]+)"/g)) names.add(m[1]);
  }
  return names;
}

/**
 * nvidia-smi timestamps ('2024/05/01 12:34:56.789', local time) as milliseconds. Read as UTC:
 * only differences between samples are used, so the zone does not matter.
 */
export function parseSmiTimestamp(s: string): number | null {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/.exec(s.trim());
  if (!m) return null;
  const ms = m[7] ? Number(m[7].padEnd(3, '0')) : 0;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], ms);
}

function num(s: string | undefined): number | null {
  if (s === undefined) return null;
  const t = s.trim();
  if (t === '' || t.startsWith('[') || /n\/a/i.test(t)) return null; // [N/A], [Not Supported]
  const v = Number(t);
  return Number.isFinite(v) ? v : null;
}

interface SmiSample extends PowerSample {
  /** Device clock, ms (from the timestamp field); used for integration. */
  deviceMs: number;
}

export class SmiPowerSampler implements PowerSampler {
  readonly id = 'smi' as const;
  readonly method = 'smi-power-integral' as const;
  readonly domain = 'gpu' as const;
  readonly estimated = false;
  readonly command: string;
  readonly intervalMs: number;
  /** Fields requested, in column order (set by probe). */
  fields: SmiField[] = [];
  private powerField: 'power.draw.instant' | 'power.draw' = 'power.draw';
  private child: ChildProcess | null = null;
  private readonly samples: SmiSample[] = [];
  private readonly devices = new Set<string>();
  private waiters: (() => void)[] = [];
  private exitNote = '';
  private stderrTail = '';
  private killOnExit: (() => void) | null = null;

  constructor(opts: SmiOptions = {}) {
    this.command = opts.command ?? 'nvidia-smi';
    this.intervalMs = opts.intervalMs ?? 100;
  }

  probe(): Promise<Probe> {
    return new Promise((resolve) => {
      execFile(this.command, ['--help-query-gpu'], { timeout: 15_000, encoding: 'utf8' }, (err, stdout) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code;
          resolve({ available: false, reason: code === 'ENOENT' ? `${this.command} not found on PATH` : `${this.command} --help-query-gpu failed: ${err.message.split('\n')[0]}` });
          return;
        }
        const listed = parseHelpQueryGpu(stdout);
        const fields = SMI_FIELDS.filter((f) => listed.has(f));
        if (!fields.includes('timestamp') || !fields.includes('index') || !(fields.includes('power.draw') || fields.includes('power.draw.instant'))) {
          resolve({ available: false, reason: `${this.command} lists no timestamp/index/power.draw query fields` });
          return;
        }
        this.fields = fields;
        this.powerField = fields.includes('power.draw.instant') ? 'power.draw.instant' : 'power.draw';
        resolve({ available: true, detail: `${this.command} fields: ${fields.join(',')}; integrating ${this.powerField}` });
      });
    });
  }

  open(): void {
    if (this.child) return;
    if (this.fields.length === 0) throw new Error(`nvidia-smi sampler: probe() must succeed before open() (${this.command})`);
    const args = [`--query-gpu=${this.fields.join(',')}`, '--format=csv,noheader,nounits', '-lms', String(this.intervalMs)];
    const child = spawn(this.command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-500);
    });
    child.on('error', (e) => {
      this.exitNote = `nvidia-smi failed: ${e.message}`;
    });
    child.on('exit', (code, signal) => {
      if (this.child === child && !signal) this.exitNote = `nvidia-smi exited early (code ${code})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`;
      this.wake();
    });
    // A training script that dies must not leave nvidia-smi running.
    this.killOnExit = () => child.kill('SIGTERM');
    process.once('exit', this.killOnExit);
  }

  private onLine(line: string): void {
    const cells = line.split(',').map((c) => c.trim());
    if (cells.length !== this.fields.length) return;
    const get = (f: SmiField): string | undefined => {
      const i = this.fields.indexOf(f);
      return i < 0 ? undefined : cells[i];
    };
    const arrival = Date.now();
    const deviceMs = parseSmiTimestamp(get('timestamp') ?? '') ?? arrival;
    const device = get('index') ?? '0';
    this.devices.add(device);
    this.samples.push({
      sampler: this.id,
      method: this.method,
      device,
      tMs: arrival,
      deviceMs,
      powerW: num(get(this.powerField)),
      utilizationPct: num(get('utilization.gpu')),
      memoryUsedMiB: num(get('memory.used')),
      memoryTotalMiB: num(get('memory.total')),
    });
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `n` samples exist, the process has exited, or after `ms`. */
  private waitFor(n: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function check(): void {
        if (self.samples.length >= n || self.child === null || self.child.exitCode !== null) done();
        else self.waiters.push(check);
      }
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      check();
    });
  }

  /** Phase start: the window will begin at the last sample before this point (or the first sample). */
  markNow(): SamplerMark {
    return { tMs: Date.now(), index: this.samples.length, values: [] };
  }

  /**
   * Phase end: waits (up to 3 periods) for one fresh sample per GPU, so a window runs from the last
   * sample before its start to the first sample after its end. Each edge is off by at most one
   * period (100 ms by default); the window's `durationS` is the span actually covered.
   */
  async mark(): Promise<SamplerMark> {
    const tMs = Date.now();
    if (this.child && this.devices.size > 0) await this.waitFor(this.samples.length + this.devices.size, 3 * this.intervalMs);
    return { tMs, index: this.samples.length, values: [] };
  }

  window(from: SamplerMark, to: SamplerMark): SamplerWindow {
    const devices = [...this.devices].sort((a, b) => Number(a) - Number(b));
    const dw: DeviceWindow[] = [];
    const utilAll: number[] = [];
    let covered = 0;
    let n = 0;
    for (const d of devices) {
      const mine = this.samples.map((s, i) => ({ s, i })).filter((x) => x.s.device === d && x.i < to.index);
      let startAt = mine.findIndex((x) => x.i >= from.index);
      if (startAt < 0) startAt = mine.length;
      const win = mine.slice(Math.max(0, startAt - 1)).map((x) => x.s);
      const pts = win.filter((s) => s.powerW !== null).map((s) => ({ tMs: s.deviceMs, powerW: s.powerW as number }));
      const span = pts.length >= 2 ? (pts[pts.length - 1].tMs - pts[0].tMs) / 1000 : 0;
      const energy = pts.length >= 2 ? trapezoidJ(pts) : null;
      const util = win.map((s) => s.utilizationPct).filter((v): v is number => v !== null);
      utilAll.push(...util);
      covered = Math.max(covered, span);
      n += win.length;
      dw.push({
        device: d,
        energyJ: energy,
        meanPowerW: energy !== null && span > 0 ? energy / span : null,
        meanUtilizationPct: mean(util),
        peakMemoryUsedMiB: maxOrNull(win.map((s) => s.memoryUsedMiB).filter((v): v is number => v !== null)),
        memoryTotalMiB: maxOrNull(win.map((s) => s.memoryTotalMiB).filter((v): v is number => v !== null)),
      });
    }
    const known = dw.filter((d) => d.energyJ !== null);
    const energyJ = known.length ? known.reduce((s, d) => s + (d.energyJ ?? 0), 0) : null;
    const notes = [
      `trapezoidal integral of ${this.powerField} sampled every ${this.intervalMs} ms by one nvidia-smi process, device timestamps`,
      this.powerField === 'power.draw' ? 'power.draw.instant not offered by this driver: power.draw is a 1 s average on Ampere and later' : '',
      this.exitNote,
    ].filter(Boolean);
    return {
      sampler: this.id,
      method: this.method,
      domain: this.domain,
      estimated: false,
      energyJ,
      durationS: covered,
      // Sum of per-GPU mean powers, i.e. total energy over the covered span.
      meanPowerW: energyJ !== null && covered > 0 ? energyJ / covered : null,
      meanUtilizationPct: mean(utilAll),
      peakMemoryUsedMiB: maxOrNull(dw.map((d) => d.peakMemoryUsedMiB).filter((v): v is number => v !== null)),
      memoryTotalMiB: maxOrNull(dw.map((d) => d.memoryTotalMiB).filter((v): v is number => v !== null)),
      devices: dw,
      samples: n,
      note: notes.join('; '),
    };
  }

  trace(): PowerSample[] {
    return this.samples.map(({ deviceMs: _d, ...s }) => s);
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (this.killOnExit) process.removeListener('exit', this.killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(resolve, 2000).unref();
      });
    }
    this.wake();
  }
}
