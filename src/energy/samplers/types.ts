/**
 * The contract every power/energy source implements (one file per source beside this one). A
 * sampler is opened once per run, `mark()`ed at the start and end of each phase, and asked for the
 * energy between two marks. Sources that need a trace (nvidia-smi, RAPL, the estimate) collect it
 * in a child process or on an unref'd timer, never in the training loop.
 */

export type SamplerId = 'nvml' | 'smi' | 'rapl' | 'estimate';

/** How a figure was produced; every energy and power figure in our outputs carries one. */
export type MeasurementMethod = 'nvml-energy-counter' | 'smi-power-integral' | 'rapl-energy-counter' | 'estimated';

export type EnergyDomain = 'gpu' | 'cpu';

export type Probe = { available: true; detail: string } | { available: false; reason: string };

/** One point of a power trace. Fields a source does not give are null, never 0. */
export interface PowerSample {
  sampler: SamplerId;
  method: MeasurementMethod;
  /** GPU index, RAPL zone or 'process'. */
  device: string;
  /** Wall clock (Date.now()) when the sample was taken or received. */
  tMs: number;
  powerW: number | null;
  utilizationPct: number | null;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
}

/** A point in time as a sampler sees it; opaque to callers. */
export interface SamplerMark {
  readonly tMs: number;
  /** Sample count at the mark (trace-based samplers). */
  readonly index: number;
  /** Cumulative counters at the mark, one per device (counter-based samplers), joules. */
  readonly values: readonly number[];
}

export interface DeviceWindow {
  device: string;
  energyJ: number | null;
  meanPowerW: number | null;
  meanUtilizationPct: number | null;
  peakMemoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
}

/** What a sampler measured between two marks. */
export interface SamplerWindow {
  sampler: SamplerId;
  method: MeasurementMethod;
  domain: EnergyDomain;
  estimated: boolean;
  /** Sum over devices; null when nothing could be measured in the window. */
  energyJ: number | null;
  durationS: number;
  /** energyJ / durationS: consistent with the energy by construction. */
  meanPowerW: number | null;
  meanUtilizationPct: number | null;
  peakMemoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  devices: DeviceWindow[];
  samples: number;
  /** How the figure was obtained, including caveats. */
  note: string;
}

export interface PowerSampler {
  readonly id: SamplerId;
  readonly method: MeasurementMethod;
  readonly domain: EnergyDomain;
  readonly estimated: boolean;
  /** Is the source usable here? Never throws: unavailability comes with a reason. */
  probe(): Promise<Probe>;
  /**
   * Start background collection (child process, timer). Synchronous so that a phase can start
   * without an await (the trainer does not await `start`); needs a successful probe(). Idempotent.
   */
  open(): void;
  /** Snapshot now, without waiting (phase starts). */
  markNow(): SamplerMark;
  /** Snapshot after fresh data arrived where the source samples periodically (phase ends). */
  mark(): Promise<SamplerMark>;
  window(from: SamplerMark, to: SamplerMark): SamplerWindow;
  /** Collected trace so far (empty for counter-only sources such as NVML). */
  trace(): PowerSample[];
  close(): Promise<void>;
}

/** Trapezoidal integral of power (W) over time (ms), in joules. */
export function trapezoidJ(points: readonly { tMs: number; powerW: number }[]): number {
  let j = 0;
  for (let i = 1; i < points.length; i++) {
    j += ((points[i].powerW + points[i - 1].powerW) / 2) * ((points[i].tMs - points[i - 1].tMs) / 1000);
  }
  return j;
}

export function mean(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function maxOrNull(xs: readonly number[]): number | null {
  // reduce, not Math.max(...xs): a long trace would overflow the call stack.
  return xs.length === 0 ? null : xs.reduce((a, b) => (b > a ? b : a), -Infinity);
}

/** Window of a counter source: per-device deltas of cumulative joules between marks. */
export function counterWindow(
  base: Pick<PowerSampler, 'id' | 'method' | 'domain' | 'estimated'>,
  devices: readonly string[],
  from: SamplerMark,
  to: SamplerMark,
  note: string,
  samples = 2,
): SamplerWindow {
  const durationS = (to.tMs - from.tMs) / 1000;
  const dw: DeviceWindow[] = devices.map((d, i) => {
    const e = to.values[i] - from.values[i];
    return {
      device: d,
      energyJ: Number.isFinite(e) ? e : null,
      meanPowerW: Number.isFinite(e) && durationS > 0 ? e / durationS : null,
      meanUtilizationPct: null,
      peakMemoryUsedMiB: null,
      memoryTotalMiB: null,
    };
  });
  const known = dw.filter((d) => d.energyJ !== null);
  const energyJ = known.length ? known.reduce((s, d) => s + (d.energyJ ?? 0), 0) : null;
  return {
    sampler: base.id,
    method: base.method,
    domain: base.domain,
    estimated: base.estimated,
    energyJ,
    durationS,
    meanPowerW: energyJ !== null && durationS > 0 ? energyJ / durationS : null,
    meanUtilizationPct: null,
    peakMemoryUsedMiB: null,
    memoryTotalMiB: null,
    devices: dw,
    samples,
    note,
  };
}
