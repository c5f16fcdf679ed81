import { counterWindow, type PowerSample, type PowerSampler, type Probe, type SamplerMark, type SamplerWindow } from './types.js';

/**
 * GPU energy from NVML's total-energy counter (nvmlDeviceGetTotalEnergyConsumption: millijoules
 * since the driver loaded, Volta and later), read at each mark: no sampling error, no overhead.
 * NVML is reached through koffi, an FFI whose prebuilt binaries ship inside its npm packages (no
 * compiler or download at install). Without libnvidia-ml.so.1 the sampler says why it is unavailable.
 */

export interface NvmlOptions {
  /** Library to dlopen; default 'libnvidia-ml.so.1' (the driver's). Tests point it at a fake. */
  library?: string;
}

type CFunc = (...args: unknown[]) => unknown;

interface NvmlApi {
  shutdown: () => void;
  handles: unknown[];
  names: string[];
  energyMj: (handle: unknown) => number | { error: string };
}

const NVML_ERROR_NOT_SUPPORTED = 3;

async function loadNvml(library: string): Promise<NvmlApi> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load(library);
  const f = (decl: string): CFunc => lib.func(decl) as CFunc;
  const init = f('int nvmlInit_v2()');
  const shutdown = f('int nvmlShutdown()');
  const errorString = f('const char *nvmlErrorString(int result)');
  const getCount = f('int nvmlDeviceGetCount_v2(_Out_ unsigned int *count)');
  const getHandle = f('int nvmlDeviceGetHandleByIndex_v2(unsigned int index, _Out_ void **device)');
  const getName = f('int nvmlDeviceGetName(void *device, _Out_ char *name, unsigned int length)');
  const getEnergy = f('int nvmlDeviceGetTotalEnergyConsumption(void *device, _Out_ unsigned long long *energy)');
  const check = (rc: unknown, what: string): void => {
    if (rc !== 0) throw new Error(`${what}: NVML error ${String(rc)} (${String(errorString(rc))})`);
  };
  check(init(), 'nvmlInit_v2');
  const count = [0];
  check(getCount(count), 'nvmlDeviceGetCount_v2');
  const handles: unknown[] = [];
  const names: string[] = [];
  for (let i = 0; i < Number(count[0]); i++) {
    const h: unknown[] = [null];
    check(getHandle(i, h), `nvmlDeviceGetHandleByIndex_v2(${i})`);
    handles.push(h[0]);
    const buf = Buffer.alloc(96);
    names.push(getName(h[0], buf, buf.length) === 0 ? buf.toString('utf8').replace(/\0.*$/s, '') : `GPU ${i}`);
  }
  return {
    shutdown: () => void shutdown(),
    handles,
    names,
    energyMj: (handle) => {
      const out: (number | bigint)[] = [0];
      const rc = getEnergy(handle, out);
      if (rc !== 0) return { error: rc === NVML_ERROR_NOT_SUPPORTED ? 'energy counter not supported (needs Volta or later)' : `NVML error ${String(rc)} (${String(errorString(rc))})` };
      return Number(out[0]);
    },
  };
}

export class NvmlEnergySampler implements PowerSampler {
  readonly id = 'nvml' as const;
  readonly method = 'nvml-energy-counter' as const;
  readonly domain = 'gpu' as const;
  readonly estimated = false;
  readonly library: string;
  private api: NvmlApi | null = null;
  private marks = 0;
  private names: string[] = [];

  constructor(opts: NvmlOptions = {}) {
    this.library = opts.library ?? 'libnvidia-ml.so.1';
  }

  async probe(): Promise<Probe> {
    try {
      const api = this.api ?? (await loadNvml(this.library));
      this.api = api;
      if (api.handles.length === 0) return this.unavailable('NVML lists no GPU');
      for (let i = 0; i < api.handles.length; i++) {
        const e = api.energyMj(api.handles[i]);
        if (typeof e !== 'number') return this.unavailable(`GPU ${i} (${api.names[i]}): ${e.error}`);
      }
      this.names = api.names.map((n, i) => `${i}:${n}`);
      return { available: true, detail: `${this.library}: ${api.handles.length} GPU(s): ${api.names.join(', ')}` };
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
      return this.unavailable(`${this.library} could not be used: ${msg}`);
    }
  }

  private unavailable(reason: string): Probe {
    this.closeApi();
    return { available: false, reason };
  }

  open(): void {
    if (!this.api) throw new Error(`NVML sampler: probe() must succeed before open() (${this.library})`);
  }

  async mark(): Promise<SamplerMark> {
    return this.markNow();
  }

  markNow(): SamplerMark {
    const api = this.api;
    const values = api ? api.handles.map((h) => {
      const e = api.energyMj(h);
      return typeof e === 'number' ? e / 1000 : Number.NaN;
    }) : [];
    return { tMs: Date.now(), index: this.marks++, values };
  }

  window(from: SamplerMark, to: SamplerMark): SamplerWindow {
    const names = this.names.length === from.values.length ? this.names : from.values.map((_, i) => String(i));
    return counterWindow(this, names, from, to, 'difference of NVML total-energy counters (mJ) read at the start and end of the phase');
  }

  trace(): PowerSample[] {
    return [];
  }

  private closeApi(): void {
    if (this.api) {
      try {
        this.api.shutdown();
      } catch {
        // Shutting down a driver library we could not fully use: nothing to recover.
      }
      this.api = null;
    }
  }

  async close(): Promise<void> {
    this.closeApi();
  }
}
