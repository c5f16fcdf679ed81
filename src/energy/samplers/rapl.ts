import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { counterWindow, type PowerSample, type PowerSampler, type Probe, type SamplerMark, type SamplerWindow } from './types.js';

/**
 * CPU energy from the Linux powercap RAPL counters (`<root>/intel-rapl:N/energy_uj`; AMD CPUs
 * expose the same interface). We sum the package zones and the DRAM zones (DRAM is not part of a
 * package's count); `core`/`uncore` are sub-parts of a package and `psys` covers the whole platform,
 * so both are left out to avoid double counting.
 *
 * energy_uj wraps to 0 after max_energy_range_uj (about 262 kJ: ~20 min at 200 W). Counters are
 * read at every mark and on an unref'd timer, and each delta that went backwards is taken as one
 * wrap: cur + (max - last). The timer period must be shorter than a wrap period.
 */

export interface RaplOptions {
  /** Default '/sys/class/powercap'; tests point it at a fake folder. */
  root?: string;
  /** Polling period for wrap detection and the trace, default 1000 ms. */
  intervalMs?: number;
}

interface Zone {
  id: string;
  name: string;
  dir: string;
  maxRangeUj: number;
  lastUj: number;
  cumJ: number;
}

const ZONE_DIR = /^[a-z-]*rapl:\d+(:\d+)?$/;

export class RaplEnergySampler implements PowerSampler {
  readonly id = 'rapl' as const;
  readonly method = 'rapl-energy-counter' as const;
  readonly domain = 'cpu' as const;
  readonly estimated = false;
  readonly root: string;
  readonly intervalMs: number;
  private zones: Zone[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly samples: PowerSample[] = [];
  private lastPoll: { tMs: number; cum: number[] } | null = null;
  private marks = 0;

  constructor(opts: RaplOptions = {}) {
    this.root = opts.root ?? '/sys/class/powercap';
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  private findZones(): Zone[] {
    const zones: Zone[] = [];
    for (const entry of readdirSync(this.root).sort()) {
      if (!ZONE_DIR.test(entry)) continue;
      const dir = join(this.root, entry);
      let name: string;
      try {
        name = readFileSync(join(dir, 'name'), 'utf8').trim();
      } catch {
        continue;
      }
      const sub = entry.split(':').length === 3;
      const keep = sub ? name.startsWith('dram') : name.startsWith('package') || name.startsWith('dram');
      if (!keep) continue;
      const maxRangeUj = Number(readFileSync(join(dir, 'max_energy_range_uj'), 'utf8').trim());
      const lastUj = Number(readFileSync(join(dir, 'energy_uj'), 'utf8').trim()); // EACCES surfaces here
      zones.push({ id: entry, name, dir, maxRangeUj, lastUj, cumJ: 0 });
    }
    return zones;
  }

  async probe(): Promise<Probe> {
    return this.probeSync();
  }

  private probeSync(): Probe {
    try {
      const zones = this.findZones();
      if (zones.length === 0) return { available: false, reason: `no RAPL package zones under ${this.root}` };
      this.zones = zones;
      return { available: true, detail: `${this.root}: ${zones.map((z) => `${z.id} (${z.name})`).join(', ')}` };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? `${this.root} not present` : err.code === 'EACCES' ? `energy_uj under ${this.root} not readable (root only on this kernel)` : err.message;
      return { available: false, reason: why };
    }
  }

  /** Reads every zone, accumulating deltas with wrap-around. */
  private read(): number[] {
    for (const z of this.zones) {
      const cur = Number(readFileSync(join(z.dir, 'energy_uj'), 'utf8').trim());
      const delta = cur >= z.lastUj ? cur - z.lastUj : cur + (z.maxRangeUj - z.lastUj);
      z.cumJ += delta / 1e6;
      z.lastUj = cur;
    }
    return this.zones.map((z) => z.cumJ);
  }

  private poll(): void {
    const tMs = Date.now();
    const cum = this.read();
    const prev = this.lastPoll;
    if (prev && tMs > prev.tMs) {
      this.zones.forEach((z, i) => {
        this.samples.push({
          sampler: this.id,
          method: this.method,
          device: `${z.id}:${z.name}`,
          tMs,
          powerW: (cum[i] - prev.cum[i]) / ((tMs - prev.tMs) / 1000),
          utilizationPct: null,
          memoryUsedMiB: null,
          memoryTotalMiB: null,
        });
      });
    }
    this.lastPoll = { tMs, cum };
  }

  open(): void {
    if (this.timer) return;
    if (this.zones.length === 0) {
      const p = this.probeSync();
      if (!p.available) throw new Error(`RAPL sampler unavailable: ${p.reason}`);
    }
    this.poll();
    this.timer = setInterval(() => {
      try {
        this.poll();
      } catch {
        // A transient read error costs one trace point; the next read still accumulates correctly.
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  markNow(): SamplerMark {
    const tMs = Date.now();
    return { tMs, index: this.marks++, values: this.read() };
  }

  async mark(): Promise<SamplerMark> {
    return this.markNow();
  }

  window(from: SamplerMark, to: SamplerMark): SamplerWindow {
    return counterWindow(
      this,
      this.zones.map((z) => `${z.id}:${z.name}`),
      from,
      to,
      `difference of RAPL energy_uj counters under ${this.root} (package + dram zones), wrap-around via max_energy_range_uj`,
    );
  }

  trace(): PowerSample[] {
    return [...this.samples];
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
