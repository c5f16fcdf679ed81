/**
 * Training progress: a redrawn bar with rate and ETA when stderr is a terminal, plain periodic
 * lines otherwise (logs, CI, files), nothing in 'none' mode.
 */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export interface ProgressOptions {
  total: number;
  /** Steps already done when this process started (resume), excluded from the rate. */
  start?: number;
  label?: string;
  mode?: ProgressMode;
  /** Where lines go (lines mode and messages); default: stderr. */
  log?: (line: string) => void;
  /** Bar output stream; default process.stderr. */
  stream?: { isTTY?: boolean; write(s: string): boolean; columns?: number };
  /** Lines mode: print every this many steps (default ≈ total/20, at least 1)... */
  everySteps?: number;
  /** ...or when this many seconds passed since the last line (default 60). */
  everySeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** 75 → "1m15s", 3725 → "1h02m05s", 9 → "9s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(sec).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

function fmtValue(v: string | number): string {
  if (typeof v === 'string') return v;
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toFixed(4) : v.toExponential(3);
}

export class Progress {
  private readonly total: number;
  private readonly start: number;
  private readonly label: string;
  private readonly mode: 'bar' | 'lines' | 'none';
  private readonly log: (line: string) => void;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly everySteps: number;
  private readonly everySeconds: number;
  private readonly now: () => number;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private lastLineStep: number;
  private lastLineTime: number;
  private barVisible = false;
  private lastText = '';

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.start = opts.start ?? 0;
    this.label = opts.label ?? 'train';
    this.stream = opts.stream ?? process.stderr;
    const mode = opts.mode ?? 'auto';
    this.mode = mode === 'auto' ? (this.stream.isTTY ? 'bar' : 'lines') : mode;
    this.log = opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`));
    this.everySteps = opts.everySteps ?? Math.max(1, Math.round(this.total / 20));
    this.everySeconds = opts.everySeconds ?? 60;
    this.now = opts.now ?? (() => Date.now());
    this.t0 = this.now();
    this.lastLineStep = this.start;
    this.lastLineTime = this.t0;
  }

  /** Seconds per step since this process started, and the ETA for the remaining steps. */
  rate(done: number): { stepsPerSecond: number; etaSeconds: number; elapsedSeconds: number } {
    const elapsed = (this.now() - this.t0) / 1000;
    const n = done - this.start;
    const sps = n > 0 && elapsed > 0 ? n / elapsed : 0;
    return { stepsPerSecond: sps, etaSeconds: sps > 0 ? (this.total - done) / sps : Number.NaN, elapsedSeconds: elapsed };
  }

  /** Report `done` completed steps with extra fields (loss, lr...). */
  update(done: number, fields: Record<string, string | number> = {}): void {
    if (this.mode === 'none') return;
    const { stepsPerSecond, etaSeconds, elapsedSeconds } = this.rate(done);
    const extras = Object.entries(fields).map(([k, v]) => `${k} ${fmtValue(v)}`).join(' ');
    const pct = this.total > 0 ? (100 * done) / this.total : 100;
    const speed = stepsPerSecond >= 1 ? `${stepsPerSecond.toFixed(2)} it/s` : stepsPerSecond > 0 ? `${(1 / stepsPerSecond).toFixed(2)} s/it` : '- it/s';
    const timing = `${formatDuration(elapsedSeconds)} elapsed, ETA ${done >= this.total ? '0s' : formatDuration(etaSeconds)}`;
    if (this.mode === 'bar') {
      const t = this.now();
      if (done < this.total && t - this.lastDraw < 100) return;
      this.lastDraw = t;
      const width = 24;
      const filled = Math.min(width, Math.floor((width * done) / Math.max(1, this.total)));
      const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
      let text = `${this.label} [${bar}] ${done}/${this.total} ${pct.toFixed(1)}% ${extras} | ${speed} | ${timing}`;
      const cols = this.stream.columns ?? 120;
      if (text.length > cols - 1) text = text.slice(0, cols - 1);
      this.lastText = text;
      this.stream.write(`\r\x1b[2K${text}`);
      this.barVisible = true;
      return;
    }
    const t = this.now();
    const due =
      done >= this.total || done - this.lastLineStep >= this.everySteps || (t - this.lastLineTime) / 1000 >= this.everySeconds;
    if (!due || done === this.lastLineStep) return;
    this.lastLineStep = done;
    this.lastLineTime = t;
    this.log(`[${this.label}] step ${done}/${this.total} (${pct.toFixed(1)}%) ${extras} | ${speed} | ${timing}`);
  }

  /** Print a message line without garbling the bar. */
  message(line: string): void {
    if (this.mode === 'bar' && this.barVisible) {
      this.stream.write('\r\x1b[2K');
      this.log(line);
      this.stream.write(`\r${this.lastText}`);
      return;
    }
    this.log(line);
  }

  /** Finish: leave the bar's last state on its own line. */
  end(): void {
    if (this.mode === 'bar' && this.barVisible) {
      this.stream.write('\n');
      this.barVisible = false;
    }
  }
}
