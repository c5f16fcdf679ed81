import { counterWindow, type PowerSample, type PowerSampler, type Probe, type SamplerMark, type SamplerWindow } from './types.js';

/**
 * When neither a GPU nor RAPL counters can be read (containers, VMs, this machine), CPU energy is
 * *estimated* as process CPU time (user + system, all threads, from process.cpuUsage()) times a
 * per-core power figure. It is always labelled 'estimated' and never presented as a measurement.
 *
 * Default 12 W per fully busy core: the per-core figure the Green Algorithms calculator
 * (Lannelongue et al., Adv. Sci. 2021) uses when the CPU model is unknown (a typical server TDP
 * divided by its core count). Override with the option or ADBENCH_WATTS_PER_CORE.
 */
export const DEFAULT_WATTS_PER_CORE = 12;

export function wattsPerCoreFromEnv(): number {
  const v = Number(process.env.ADBENCH_WATTS_PER_CORE);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_WATTS_PER_CORE;
}

export interface EstimateOptions {
  wattsPerCore?: number;
  /** Trace period, default 1000 ms. */
  intervalMs?: number;
  /** CPU-time source, microseconds; injectable for tests. Default process.cpuUsage(). */
  cpuUsage?: () => { user: number; system: number };
}

export class CpuTimeEstimateSampler implements PowerSampler {
  readonly id = 'estimate' as const;
  readonly method = 'estimated' as const;
  readonly domain = 'cpu' as const;
  readonly estimated = true;
  readonly wattsPerCore: number;
  readonly intervalMs: number;
  private readonly cpuUsage: () => { user: number; system: number };
  private timer: NodeJS.Timeout | null = null;
  private readonly samples: PowerSample[] = [];
  private last: { tMs: number; j: number } | null = null;
  private marks = 0;

  constructor(opts: EstimateOptions = {}) {
    this.wattsPerCore = opts.wattsPerCore ?? wattsPerCoreFromEnv();
    this.intervalMs = opts.intervalMs ?? 1000;
    this.cpuUsage = opts.cpuUsage ?? (() => process.cpuUsage());
  }

  async probe(): Promise<Probe> {
    return { available: true, detail: `process CPU time x ${this.wattsPerCore} W per core (estimated)` };
  }

  /** Estimated cumulative joules of this process so far. */
  private joules(): number {
    const u = this.cpuUsage();
    return ((u.user + u.system) / 1e6) * this.wattsPerCore;
  }

  private poll(): void {
    const tMs = Date.now();
    const j = this.joules();
    if (this.last && tMs > this.last.tMs) {
      this.samples.push({
        sampler: this.id,
        method: this.method,
        device: 'process',
        tMs,
        powerW: (j - this.last.j) / ((tMs - this.last.tMs) / 1000),
        utilizationPct: null,
        memoryUsedMiB: null,
        memoryTotalMiB: null,
      });
    }
    this.last = { tMs, j };
  }

  open(): void {
    if (this.timer) return;
    this.poll();
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  markNow(): SamplerMark {
    return { tMs: Date.now(), index: this.marks++, values: [this.joules()] };
  }

  async mark(): Promise<SamplerMark> {
    return this.markNow();
  }

  window(from: SamplerMark, to: SamplerMark): SamplerWindow {
    return counterWindow(this, ['process'], from, to, `ESTIMATE: process CPU time (user+system) x ${this.wattsPerCore} W per core; not a measurement`);
  }

  trace(): PowerSample[] {
    return [...this.samples];
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
