import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CostMeter } from '../src/energy/meter.js';
import { CpuTimeEstimateSampler } from '../src/energy/samplers/estimate.js';
import { NvmlEnergySampler } from '../src/energy/samplers/nvml.js';
import { RaplEnergySampler } from '../src/energy/samplers/rapl.js';
import { parseHelpQueryGpu, parseSmiTimestamp, SmiPowerSampler } from '../src/energy/samplers/smi.js';
import { trapezoidJ } from '../src/energy/samplers/types.js';

const dir = mkdtempSync(join(tmpdir(), 'adbench-energy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HELP_FULL = `List of valid properties to query for the switch "--query-gpu=":

"timestamp"
The timestamp of when the query was made in format "YYYY/MM/DD HH:MM:SS.msec".

"index"
Zero based index of the GPU.

"utilization.gpu"
Percent of time over the past sample period during which one or more kernels was executing on the GPU.

"memory.total"
Total installed GPU memory.

"memory.used"
Total memory allocated by active contexts.

"power.draw"
The last measured power draw for the entire board, in watts. On Ampere or newer devices, returns average power draw over 1 sec.

"power.draw.average"
The last measured average power draw for the entire board, in watts.

"power.draw.instant"
The last measured instant power draw for the entire board, in watts.
`;

/** A fake nvidia-smi: answers --help-query-gpu, then prints a fixed trace and idles like -lms. */
function fakeSmi(name: string, help: string, lines: string[]): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const script = `#!/bin/sh
if [ "$1" = "--help-query-gpu" ]; then
cat <<'HELP'
${help}
HELP
exit 0
fi
echo "$@" > "${d}/args"
cat <<'TRACE'
${lines.join('\n')}
TRACE
exec sleep 30
`;
  const path = join(d, 'nvidia-smi');
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return d;
}

const ts = (ms: number): string => `2025/03/01 10:00:0${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')}`;

describe('nvidia-smi sampler', () => {
  it('parses the help listing and timestamps', () => {
    const f = parseHelpQueryGpu(HELP_FULL);
    expect(f.has('power.draw.instant')).toBe(true);
    expect(f.has('YYYY')).toBe(false);
    expect(parseSmiTimestamp('2025/03/01 10:00:01.250')! - parseSmiTimestamp('2025/03/01 10:00:00.100')!).toBe(1150);
  });

  it('integrates power.draw.instant of every GPU with the trapezoidal rule, through the PATH', async () => {
    // GPU 0: 100, 200, 200, 100 W; GPU 1: 50, 50, 70, 90 W; 100 ms apart. power.draw (1 s average) is a decoy.
    const p0 = [100, 200, 200, 100];
    const p1 = [50, 50, 70, 90];
    const lines: string[] = [];
    for (let i = 0; i < 4; i++) {
      lines.push(`${ts(i * 100)}, 0, ${p0[i].toFixed(2)}, 999.00, ${10 * (i + 1)}, ${1000 + i}, 81559`);
      lines.push(`${ts(i * 100)}, 1, ${p1[i].toFixed(2)}, 999.00, 50, 2000, 81559`);
    }
    const bin = fakeSmi('smi-full', HELP_FULL, lines);
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      const meter = await CostMeter.create({ samplers: ['smi'], smiIntervalMs: 50, trackTfMemory: false });
      expect(meter.statuses[0]).toMatchObject({ id: 'smi', available: true });
      await meter.start('train');
      const smi = meter.samplers[0];
      for (let i = 0; i < 100 && smi.trace().length < 8; i++) await new Promise((r) => setTimeout(r, 20));
      const c = await meter.stop('train');
      await meter.close();
      const e0 = trapezoidJ(p0.map((w, i) => ({ tMs: i * 100, powerW: w })));
      const e1 = trapezoidJ(p1.map((w, i) => ({ tMs: i * 100, powerW: w })));
      expect(e0).toBeCloseTo(50, 12);
      expect(e1).toBeCloseTo(19, 12);
      const w = c.samplers[0];
      expect(w.method).toBe('smi-power-integral');
      expect(w.energyJ).toBeCloseTo(69, 9);
      expect(w.devices.map((d) => d.energyJ)).toEqual([expect.closeTo(50, 9), expect.closeTo(19, 9)]);
      expect(w.durationS).toBeCloseTo(0.3, 9);
      expect(w.meanPowerW).toBeCloseTo(69 / 0.3, 6);
      expect(w.meanUtilizationPct).toBeCloseTo((10 + 20 + 30 + 40 + 4 * 50) / 8, 9);
      expect(w.peakMemoryUsedMiB).toBe(2000);
      expect(w.memoryTotalMiB).toBe(81559);
      expect(c.gpuEnergy?.method).toBe('smi-power-integral');
      expect(c.gpuEnergy?.joules).toBeCloseTo(69, 9);
      expect(c.energy?.estimated).toBe(false);
      expect(c.gpu?.meanUtilizationPct).toBeCloseTo(w.meanUtilizationPct!, 12);
      const args = execFileSync('cat', [join(bin, 'args')], { encoding: 'utf8' });
      expect(args).toContain('--query-gpu=timestamp,index,power.draw.instant,power.draw,utilization.gpu,memory.used,memory.total');
      expect(args).toContain('-lms 50');
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('falls back to power.draw when the driver lists no instant field, and says so', async () => {
    const help = HELP_FULL.replace(/"power\.draw\.instant"[^]*$/, '');
    const lines = [0, 1000, 2000].map((t, i) => `${ts(t)}, 0, ${[10, 30, 30][i]}, 5, 100, 200`);
    const bin = fakeSmi('smi-old', help, lines);
    const s = new SmiPowerSampler({ command: join(bin, 'nvidia-smi'), intervalMs: 30 });
    expect((await s.probe()).available).toBe(true);
    expect(s.fields).toEqual(['timestamp', 'index', 'power.draw', 'utilization.gpu', 'memory.used', 'memory.total']);
    s.open();
    const a = await s.mark();
    for (let i = 0; i < 100 && s.trace().length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    const b = await s.mark();
    const w = s.window(a, b);
    await s.close();
    expect(w.energyJ).toBeCloseTo(20 + 30, 9);
    expect(w.note).toContain('1 s average');
  });

  it('is unavailable, with a reason, when nvidia-smi is absent', async () => {
    const p = await new SmiPowerSampler({ command: join(dir, 'no-such-nvidia-smi') }).probe();
    expect(p).toEqual({ available: false, reason: expect.stringContaining('not found') });
  });
});

describe('RAPL sampler', () => {
  const zone = (root: string, id: string, name: string, max: number, uj: number): void => {
    mkdirSync(join(root, id), { recursive: true });
    writeFileSync(join(root, id, 'name'), `${name}\n`);
    writeFileSync(join(root, id, 'max_energy_range_uj'), `${max}\n`);
    writeFileSync(join(root, id, 'energy_uj'), `${uj}\n`);
  };

  it('sums package and dram zones and handles wrap-around via max_energy_range_uj', async () => {
    const root = join(dir, 'powercap');
    zone(root, 'intel-rapl:0', 'package-0', 1_000_000, 900_000);
    zone(root, 'intel-rapl:0:0', 'core', 1_000_000, 5);
    zone(root, 'intel-rapl:0:1', 'dram', 500_000, 100);
    zone(root, 'intel-rapl:1', 'psys', 1_000_000, 7);
    const s = new RaplEnergySampler({ root, intervalMs: 60_000 });
    const p = await s.probe();
    expect(p.available).toBe(true);
    s.open();
    const a = await s.mark();
    writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), '100000\n'); // wrapped: +100000 +100000
    writeFileSync(join(root, 'intel-rapl:0:1', 'energy_uj'), '400\n');
    writeFileSync(join(root, 'intel-rapl:0:0', 'energy_uj'), '999999\n'); // ignored (inside the package)
    const b = await s.mark();
    writeFileSync(join(root, 'intel-rapl:0', 'energy_uj'), '50000\n'); // wraps again: +950000
    const c = await s.mark();
    await s.close();
    const w1 = s.window(a, b);
    expect(w1.method).toBe('rapl-energy-counter');
    expect(w1.devices.map((d) => d.device)).toEqual(['intel-rapl:0:package-0', 'intel-rapl:0:1:dram']);
    expect(w1.energyJ).toBeCloseTo(0.2 + 0.0003, 12);
    expect(s.window(a, c).energyJ).toBeCloseTo(0.2 + 0.95 + 0.0003, 12);
  });

  it('is unavailable, with a reason, without powercap', async () => {
    const p = await new RaplEnergySampler({ root: join(dir, 'nothing-here') }).probe();
    expect(p).toEqual({ available: false, reason: expect.stringContaining('not present') });
  });
});

describe('NVML sampler', () => {
  it('is unavailable, with a reason, when libnvidia-ml.so.1 is absent', async () => {
    const p = await new NvmlEnergySampler({ library: join(dir, 'libnvidia-ml.so.1') }).probe();
    expect(p.available).toBe(false);
    if (!p.available) expect(p.reason).toMatch(/libnvidia-ml\.so\.1 could not be used/);
  });

  let cc = true;
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    cc = false;
  }
  it.skipIf(!cc)('reads the total-energy counter of every GPU through koffi (fake NVML built with cc)', async () => {
    const src = join(dir, 'fake_nvml.c');
    // Each read advances GPU 0 by 5000 mJ and GPU 1 by 7000 mJ.
    writeFileSync(
      src,
      `#include <string.h>
static int dev0, dev1;
static unsigned long long n0 = 0, n1 = 0;
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { (void)r; return "fake"; }
int nvmlDeviceGetCount_v2(unsigned int *c) { *c = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) { *d = i == 0 ? (void *)&dev0 : (void *)&dev1; return 0; }
int nvmlDeviceGetName(void *d, char *name, unsigned int len) { strncpy(name, d == &dev0 ? "Fake H100" : "Fake A100", len); return 0; }
int nvmlDeviceGetTotalEnergyConsumption(void *d, unsigned long long *e) {
  if (d == &dev0) *e = 5000000000000ULL + 5000ULL * n0++; else *e = 2000000ULL + 7000ULL * n1++;
  return 0;
}
`,
    );
    const lib = join(dir, 'libfake-nvml.so');
    execFileSync('cc', ['-shared', '-fPIC', '-o', lib, src]);
    const s = new NvmlEnergySampler({ library: lib });
    const p = await s.probe(); // reads each counter once
    expect(p).toEqual({ available: true, detail: expect.stringContaining('Fake H100, Fake A100') });
    s.open();
    const a = await s.mark();
    const b = await s.mark();
    await s.close();
    const w = s.window(a, b);
    expect(w.method).toBe('nvml-energy-counter');
    expect(w.devices.map((d) => d.device)).toEqual(['0:Fake H100', '1:Fake A100']);
    expect(w.devices.map((d) => d.energyJ)).toEqual([5, 7]);
    expect(w.energyJ).toBe(12);
  });
});

describe('CPU-time estimate', () => {
  it('is CPU seconds x W per core, labelled estimated everywhere', async () => {
    let us = 0;
    const s = new CpuTimeEstimateSampler({ wattsPerCore: 10, cpuUsage: () => ({ user: us, system: us / 2 }) });
    const a = await s.mark();
    us = 2_000_000; // 2 s user + 1 s system
    const b = await s.mark();
    const w = s.window(a, b);
    expect(w.energyJ).toBe(30);
    expect(w.method).toBe('estimated');
    expect(w.estimated).toBe(true);
    expect(w.note).toMatch(/ESTIMATE/);
  });

  it('is what CostMeter runs when no GPU or RAPL source is readable', async () => {
    const meter = await CostMeter.create({
      smiCommand: join(dir, 'absent-smi'),
      nvmlLibrary: join(dir, 'absent-nvml.so'),
      powercapRoot: join(dir, 'absent-powercap'),
      wattsPerCore: 10,
      pollIntervalMs: 20,
    });
    expect(meter.statuses.map((s) => [s.id, s.running])).toEqual([
      ['nvml', false],
      ['smi', false],
      ['rapl', false],
      ['estimate', true],
    ]);
    await meter.start('train');
    const t = Date.now();
    let x = 0;
    while (Date.now() - t < 60) x += Math.sqrt(x + 1);
    await new Promise((r) => setTimeout(r, 60));
    const c = await meter.stop('train');
    await meter.close();
    expect(x).toBeGreaterThan(0);
    expect(c.energy?.method).toBe('estimated');
    expect(c.energy?.estimated).toBe(true);
    expect(c.gpuEnergy).toBeNull();
    expect(c.gpu).toBeNull();
    expect(c.energy!.joules).toBeCloseTo((c.process.cpuUserS + c.process.cpuSystemS) * 10, 1);
    expect(meter.trace().every((p) => p.method === 'estimated')).toBe(true);
  });
});
