import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../errors.js';
import { energyFigures, netOfIdle, DEFAULT_PUE, PAPER_CO2_KG_PER_KWH, type Co2Options, type EnergyFigures } from './co2.js';
import { addKernelListener } from './kernelHook.js';
import { CpuTimeEstimateSampler, wattsPerCoreFromEnv } from './samplers/estimate.js';
import { NvmlEnergySampler } from './samplers/nvml.js';
import { RaplEnergySampler } from './samplers/rapl.js';
import { SmiPowerSampler } from './samplers/smi.js';
import type { MeasurementMethod, PowerSample, PowerSampler, SamplerId, SamplerMark, SamplerWindow } from './samplers/types.js';

/**
 * CostMeter: the one object training and evaluation code uses to price a run.
 *
 *   const meter = await CostMeter.create();        // probes every source
 *   await meter.measureIdle(5);                    // optional idle baseline
 *   meter.start('train'); ...; await meter.stop('train');  // start is synchronous
 *   await meter.close();                           // then writeCostArtifacts(runDir, { meter, ... })
 *
 * Source choice ('auto'): every available source runs, in the order nvml > smi > rapl > estimate.
 * NVML's counter gives the GPU energy when present; nvidia-smi's trace then still supplies power
 * over time, utilisation and memory (and is the GPU energy fallback). RAPL gives CPU energy; only
 * when RAPL is unavailable does the CPU-time estimate run, labelled 'estimated'. The headline energy
 * (Table 5) is the GPU's when a GPU source ran, as the paper measured GPU power, else the CPU's.
 *
 * Nothing here runs inside the training loop: nvidia-smi is a child process, RAPL/estimate/RSS
 * polling are unref'd timers, and tfjs peak memory is read from engine counters after each kernel.
 */

export interface CostMeterOptions {
  /** 'auto' (default) or an explicit list; sampler instances may be passed (tests, custom sources). */
  samplers?: 'auto' | readonly (SamplerId | PowerSampler)[];
  /** nvidia-smi -lms period, default 100 ms. */
  smiIntervalMs?: number;
  smiCommand?: string;
  nvmlLibrary?: string;
  powercapRoot?: string;
  /** RAPL/estimate/RSS polling period, default 1000 ms. */
  pollIntervalMs?: number;
  wattsPerCore?: number;
  co2?: Co2Options;
  /** Track tfjs bytes/tensors peaks through the kernel hook; default true. */
  trackTfMemory?: boolean;
}

export interface SamplerStatus {
  id: SamplerId;
  method: MeasurementMethod;
  available: boolean;
  /** What it reads, or why it cannot run. */
  detail: string;
  running: boolean;
}

export interface ProcessPhaseStats {
  cpuUserS: number;
  cpuSystemS: number;
  /** Peak resident set size seen by polling and at the marks, bytes. */
  rssPeakBytes: number;
  /** Peak tfjs-allocated bytes/tensors (engine counters after each kernel); null when not tracked. */
  tfPeakBytes: number | null;
  tfPeakTensors: number | null;
  tfEndBytes: number;
  tfEndTensors: number;
}

export interface GpuPhaseStats {
  meanUtilizationPct: number | null;
  peakMemoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
  /** Mean of the sampled power (smi) over the phase, W. */
  meanSampledPowerW: number | null;
  method: MeasurementMethod;
}

export interface PhaseCosts {
  phase: string;
  startedAt: string;
  endedAt: string;
  wallS: number;
  samplers: SamplerWindow[];
  /** nvml counter, else smi integral; null when no GPU source ran. */
  gpuEnergy: EnergyFigures | null;
  /** RAPL, else the CPU-time estimate. */
  cpuEnergy: EnergyFigures | null;
  /** The Table 5 figure: GPU energy when measured, else CPU energy (then possibly estimated). */
  energy: EnergyFigures | null;
  /** `energy` net of the idle baseline, when one was measured. */
  net: { idlePhase: string; idlePowerW: number; energy: EnergyFigures } | null;
  gpu: GpuPhaseStats | null;
  process: ProcessPhaseStats;
}

export interface CostReport {
  createdAt: string;
  samplers: SamplerStatus[];
  co2FactorKgPerKwh: number;
  pue: number;
  /** The estimate's W per busy core, when the estimate ran; null otherwise. */
  wattsPerCore: number | null;
  phases: PhaseCosts[];
}

interface ActivePhase {
  name: string;
  t0: number;
  startedAt: string;
  marks: Map<PowerSampler, SamplerMark>;
  cpu0: NodeJS.CpuUsage;
  rssPeak: number;
  tfPeakBytes: number;
  tfPeakTensors: number;
}

const ORDER: SamplerId[] = ['nvml', 'smi', 'rapl', 'estimate'];

export class CostMeter {
  private readonly running: PowerSampler[];
  readonly statuses: SamplerStatus[];
  readonly co2FactorKgPerKwh: number;
  readonly pue: number;
  private readonly active = new Map<string, ActivePhase>();
  private readonly done: PhaseCosts[] = [];
  private opened = false;
  private removeKernelListener: (() => void) | null = null;
  private rssTimer: NodeJS.Timeout | null = null;
  private kernelTick = 0;
  private idle: PhaseCosts | null = null;

  private constructor(
    running: PowerSampler[],
    statuses: SamplerStatus[],
    private readonly opts: CostMeterOptions,
  ) {
    this.running = running;
    this.statuses = statuses;
    this.co2FactorKgPerKwh = opts.co2?.factorKgPerKwh ?? PAPER_CO2_KG_PER_KWH;
    this.pue = opts.co2?.pue ?? DEFAULT_PUE;
  }

  /** Probes the sources and chooses which run (see the class comment). */
  static async create(opts: CostMeterOptions = {}): Promise<CostMeter> {
    const make = (id: SamplerId): PowerSampler => {
      switch (id) {
        case 'nvml':
          return new NvmlEnergySampler({ library: opts.nvmlLibrary });
        case 'smi':
          return new SmiPowerSampler({ command: opts.smiCommand, intervalMs: opts.smiIntervalMs });
        case 'rapl':
          return new RaplEnergySampler({ root: opts.powercapRoot, intervalMs: opts.pollIntervalMs });
        case 'estimate':
          return new CpuTimeEstimateSampler({ wattsPerCore: opts.wattsPerCore ?? wattsPerCoreFromEnv(), intervalMs: opts.pollIntervalMs });
        default:
          throw new ConfigError(`CostMeter: unknown sampler '${String(id)}'; choose from ${ORDER.join(', ')}`);
      }
    };
    const auto = opts.samplers === undefined || opts.samplers === 'auto';
    const candidates: PowerSampler[] = auto ? ORDER.map(make) : (opts.samplers as readonly (SamplerId | PowerSampler)[]).map((s) => (typeof s === 'string' ? make(s) : s));
    const running: PowerSampler[] = [];
    const statuses: SamplerStatus[] = [];
    for (const s of candidates) {
      if (auto && s.id === 'estimate' && running.some((r) => r.id === 'rapl')) {
        statuses.push({ id: s.id, method: s.method, available: true, detail: 'not run: RAPL measures the CPU', running: false });
        continue;
      }
      const p = await s.probe();
      statuses.push({ id: s.id, method: s.method, available: p.available, detail: p.available ? p.detail : p.reason, running: p.available });
      if (p.available) running.push(s);
    }
    return new CostMeter(running, statuses, opts);
  }

  /** Sources that run, in preference order. */
  get samplers(): readonly PowerSampler[] {
    return this.running;
  }

  private ensureOpen(): void {
    if (this.opened) return;
    this.opened = true;
    for (const s of this.running) s.open();
    if (this.opts.trackTfMemory ?? true) {
      this.removeKernelListener = addKernelListener(() => this.onKernel(), { detail: false });
    }
    this.rssTimer = setInterval(() => this.pollRss(), this.opts.pollIntervalMs ?? 1000);
    this.rssTimer.unref();
  }

  private onKernel(): void {
    if (this.active.size === 0) return;
    const st = tf.engine().state;
    for (const a of this.active.values()) {
      if (st.numBytes > a.tfPeakBytes) a.tfPeakBytes = st.numBytes;
      if (st.numTensors > a.tfPeakTensors) a.tfPeakTensors = st.numTensors;
    }
    // RSS is a system call: sample it every 256 kernels, since timers cannot fire inside a step.
    if ((++this.kernelTick & 255) === 0) this.pollRss();
  }

  private pollRss(): void {
    if (this.active.size === 0) return;
    const rss = process.memoryUsage.rss();
    for (const a of this.active.values()) if (rss > a.rssPeak) a.rssPeak = rss;
  }

  /**
   * Begins a phase ('idle', 'train', 'inference', ...); phases may overlap. Synchronous, so callers
   * that do not await it (the trainer) still mark the right instant.
   */
  start(phase: string): void {
    if (this.active.has(phase)) throw new ConfigError(`CostMeter: phase '${phase}' already started`);
    this.ensureOpen();
    const marks = new Map<PowerSampler, SamplerMark>();
    for (const s of this.running) marks.set(s, s.markNow());
    const mem = tf.memory();
    this.active.set(phase, {
      name: phase,
      t0: performance.now(),
      startedAt: new Date().toISOString(),
      marks,
      cpu0: process.cpuUsage(),
      rssPeak: process.memoryUsage.rss(),
      tfPeakBytes: mem.numBytes,
      tfPeakTensors: mem.numTensors,
    });
  }

  /** Ends a phase and returns its costs. */
  async stop(phase: string): Promise<PhaseCosts> {
    const a = this.active.get(phase);
    if (!a) throw new ConfigError(`CostMeter: phase '${phase}' was not started`);
    this.pollRss();
    const wallS = (performance.now() - a.t0) / 1000;
    const cpu = process.cpuUsage(a.cpu0);
    const ends = new Map<PowerSampler, SamplerMark>();
    // All samplers are marked before any waits on a fresh sample, so their ends line up.
    await Promise.all(this.running.map(async (s) => ends.set(s, await s.mark())));
    this.active.delete(phase);
    const windows = this.running.map((s) => s.window(a.marks.get(s)!, ends.get(s)!));
    const mem = tf.memory();
    const costs = this.phaseCosts(a, wallS, windows, cpu, mem.numBytes, mem.numTensors);
    this.done.push(costs);
    return costs;
  }

  private figures(w: SamplerWindow | undefined): EnergyFigures | null {
    if (!w || w.energyJ === null) return null;
    return energyFigures(w.energyJ, w.durationS, w, { factorKgPerKwh: this.co2FactorKgPerKwh, pue: this.pue });
  }

  private phaseCosts(a: ActivePhase, wallS: number, windows: SamplerWindow[], cpu: NodeJS.CpuUsage, tfEndBytes: number, tfEndTensors: number): PhaseCosts {
    const by = (id: SamplerId): SamplerWindow | undefined => windows.find((w) => w.sampler === id && w.energyJ !== null);
    const gpuW = by('nvml') ?? by('smi');
    const cpuW = by('rapl') ?? by('estimate');
    const gpuEnergy = this.figures(gpuW);
    const cpuEnergy = this.figures(cpuW);
    const energy = gpuEnergy ?? cpuEnergy;
    let net: PhaseCosts['net'] = null;
    if (energy && this.idle && this.idle.phase !== a.name) {
      const idleW = this.idle.samplers.find((w) => w.method === energy.method)?.meanPowerW;
      if (idleW !== null && idleW !== undefined) net = { idlePhase: this.idle.phase, idlePowerW: idleW, energy: netOfIdle(energy, idleW) };
    }
    const smi = windows.find((w) => w.sampler === 'smi');
    const track = this.opts.trackTfMemory ?? true;
    return {
      phase: a.name,
      startedAt: a.startedAt,
      endedAt: new Date().toISOString(),
      wallS,
      samplers: windows,
      gpuEnergy,
      cpuEnergy,
      energy,
      net,
      gpu: smi
        ? {
            meanUtilizationPct: smi.meanUtilizationPct,
            peakMemoryUsedMiB: smi.peakMemoryUsedMiB,
            memoryTotalMiB: smi.memoryTotalMiB,
            meanSampledPowerW: smi.meanPowerW,
            method: smi.method,
          }
        : null,
      process: {
        cpuUserS: cpu.user / 1e6,
        cpuSystemS: cpu.system / 1e6,
        rssPeakBytes: a.rssPeak,
        tfPeakBytes: track ? a.tfPeakBytes : null,
        tfPeakTensors: track ? a.tfPeakTensors : null,
        tfEndBytes,
        tfEndTensors,
      },
    };
  }

  /**
   * Samples an idle baseline for `seconds` (phase 'idle') before training; later phases then also
   * report energy net of idle power x their duration.
   */
  async measureIdle(seconds: number, phase = 'idle'): Promise<PhaseCosts> {
    this.start(phase);
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const c = await this.stop(phase);
    this.idle = c;
    return c;
  }

  /** Costs of the phases stopped so far, in stop order. */
  phases(): PhaseCosts[] {
    return [...this.done];
  }

  phase(name: string): PhaseCosts | undefined {
    return this.done.filter((p) => p.phase === name).at(-1);
  }

  /** Every trace point collected by every source (estimate included, labelled by `method`). */
  trace(): PowerSample[] {
    return this.running.flatMap((s) => s.trace()).sort((x, y) => x.tMs - y.tMs);
  }

  report(): CostReport {
    const est = this.running.find((s): s is CpuTimeEstimateSampler => s instanceof CpuTimeEstimateSampler);
    return {
      createdAt: new Date().toISOString(),
      samplers: this.statuses,
      co2FactorKgPerKwh: this.co2FactorKgPerKwh,
      pue: this.pue,
      wattsPerCore: est ? est.wattsPerCore : null,
      phases: this.phases(),
    };
  }

  /** Stops background collection (nvidia-smi, timers, kernel hook). Phases still open are dropped. */
  async close(): Promise<void> {
    this.active.clear();
    if (this.rssTimer) clearInterval(this.rssTimer);
    this.rssTimer = null;
    this.removeKernelListener?.();
    this.removeKernelListener = null;
    for (const s of this.running) await s.close();
  }
}
