import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend.js';
import { buildCostsJson, writeCostArtifacts, type CostsJson } from '../src/energy/artifacts.js';
import { co2Kg, energyFigures, J_PER_KWH, netOfIdle, PAPER_CO2_KG_PER_KWH } from '../src/energy/co2.js';
import { countMacs } from '../src/energy/macs.js';
import { CostMeter } from '../src/energy/meter.js';
import { timeInference } from '../src/energy/timing.js';
import { Conv2d } from '../src/nn/index.js';

const dir = mkdtempSync(join(tmpdir(), 'adbench-costs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await initBackend('wasm');
});

describe('energy to CO2', () => {
  it('derives kJ, kWh, mean W and CO2 = kWh x factor x PUE from joules', () => {
    const e = energyFigures(7_200_000, 3600, { domain: 'gpu', method: 'nvml-energy-counter', estimated: false }, { factorKgPerKwh: 0.3, pue: 1.5 });
    expect(e.kJ).toBe(7200);
    expect(e.kWh).toBe(2);
    expect(e.meanPowerW).toBe(2000);
    expect(e.co2Kg).toBe(2 * 0.3 * 1.5);
    expect(e.co2Kg).toBe(co2Kg(e.kWh, 0.3, 1.5));
    const d = energyFigures(233_460, 135, { domain: 'gpu', method: 'smi-power-integral', estimated: false });
    expect(d.co2FactorKgPerKwh).toBe(PAPER_CO2_KG_PER_KWH);
    expect(d.pue).toBe(1);
    expect(d.co2Kg).toBe((233_460 / J_PER_KWH) * 0.475 * 1);
    const net = netOfIdle(e, 500);
    expect(net.joules).toBe(7_200_000 - 500 * 3600);
    expect(net.co2Kg).toBe((net.joules / J_PER_KWH) * 0.3 * 1.5);
  });
});

describe('timeInference', () => {
  it('reports the median per image after warm-up and disposes returned tensors', async () => {
    let calls = 0;
    const delays = [50, 1, 1, 30, 10, 20];
    const before = tf.memory().numTensors;
    const t = await timeInference(
      async () => {
        const d = delays[calls++];
        await new Promise((r) => setTimeout(r, d));
        return { y: tf.zeros([4, 2]) };
      },
      { warmup: 1, repeats: 5, batch: 4 },
    );
    expect(calls).toBe(6);
    expect(tf.memory().numTensors).toBe(before);
    expect(t.samplesS).toHaveLength(5);
    const sorted = [...t.samplesS].sort((a, b) => a - b);
    expect(t.medianSPerCall).toBe(sorted[2]);
    expect(t.medianSPerImage).toBe(sorted[2] / 4);
    expect(t.medianSPerCall).toBeGreaterThanOrEqual(0.009);
    expect(t.method).toContain('median of 5');
  });
});

describe('CostMeter phases', () => {
  it('marks the phase start synchronously (the trainer does not await start)', async () => {
    let us = 0;
    const { CpuTimeEstimateSampler } = await import('../src/energy/samplers/estimate.js');
    const fake = new CpuTimeEstimateSampler({ wattsPerCore: 1, cpuUsage: () => ({ user: us, system: 0 }) });
    const meter = await CostMeter.create({ samplers: [fake], trackTfMemory: false });
    meter.start('train'); // returns void: nothing to await
    us = 5_000_000; // work after start counts
    await meter.stop('train');
    await meter.close();
    expect(meter.phase('train')?.energy?.joules).toBe(5);
    expect(() => meter.start('train')).not.toThrow();
    await expect(meter.stop('nope')).rejects.toThrow(/was not started/);
  });
});

describe('costs.json and the other run artifacts', () => {
  it('leaves unmeasured fields null (never 0)', () => {
    const c = buildCostsJson({ method: 'X' });
    for (const group of [c.table5, c.table6, c.memory] as Record<string, { value: number | null; method: string | null }>[]) {
      for (const [k, q] of Object.entries(group)) {
        expect(q.value, k).toBeNull();
        expect(q.method, k).toBeNull();
      }
    }
    expect(c.macs).toBeNull();
  });

  it('writes costs.json, power-trace.csv, macs.csv, power.png and costs.md, estimates labelled', async () => {
    const meter = await CostMeter.create({ samplers: ['estimate'], wattsPerCore: 12, pollIntervalMs: 15 });
    await meter.measureIdle(0.05);
    await meter.start('train');
    const conv = new Conv2d(3, 8, 3, { padding: 1 });
    for (let i = 0; i < 5; i++) tf.tidy(() => conv.call(tf.randomNormal([2, 32, 32, 3]) as tf.Tensor4D).dataSync());
    await new Promise((r) => setTimeout(r, 60));
    const train = await meter.stop('train');
    await meter.close();
    const inference = [
      await timeInference(() => conv.call(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D), { warmup: 1, repeats: 3, batch: 1 }),
      await timeInference(() => conv.call(tf.zeros([4, 32, 32, 3]) as tf.Tensor4D), { warmup: 1, repeats: 3, batch: 4 }),
    ];
    const macs = countMacs(() => conv.call(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D), { modules: conv });
    const paper = { co2Kg: '0.030', energyKj: '233.46', gpuPowerW: '71.21', trainTimeS: '135', inferenceTimeS: '0.7760', gpuUtilPct: '11.27', modelSizeMb: '68.88', gmac: '9.24' };
    const out = await writeCostArtifacts(join(dir, 'run'), { method: 'PatchCore', meter, macs, macsPass: 'one forward at 32²', inference, paper, backend: 'wasm' });
    conv.dispose();

    const c = JSON.parse(readFileSync(out.files.costsJson, 'utf8')) as CostsJson;
    expect(c.table5.energyKj.estimated).toBe(true);
    expect(c.table5.energyKj.method).toMatch(/^estimated \(ESTIMATED/);
    expect(c.table5.energyKj.value).toBeCloseTo(train.energy!.kJ, 12);
    expect(c.table5.co2Kg.value).toBeCloseTo((train.energy!.joules / 3.6e6) * 0.475, 15);
    expect(c.table5.co2Kg.estimated).toBe(true);
    expect(c.table5.gpuPowerW.value).toBeNull();
    expect(c.table5.netEnergyKj.value).not.toBeNull();
    expect(c.table6.gpuUtilPct.value).toBeNull();
    expect(c.memory.gpuPeakMemoryUsedMiB.value).toBeNull();
    expect(c.table6.trainTimeS.value).toBeCloseTo(train.wallS, 12);
    expect(c.table6.inferenceTimeS.value).toBe(inference[0].medianSPerImage);
    expect(c.table6.inferenceTimeSBatchN.value).toBe(inference[1].medianSPerImage);
    expect(c.table6.gmac.value).toBe((32 * 32 * 9 * 3 * 8) / 1e9);
    expect(c.table6.modelSizeMParams.value).toBe((3 * 3 * 3 * 8 + 8) / 1e6);
    expect(c.memory.tfPeakBytes.value).toBeGreaterThan(0);
    expect(c.memory.rssPeakBytes.value).toBeGreaterThan(0);
    expect(c.conventions.co2FactorKgPerKwh).toBe(0.475);
    expect(c.conventions.pue).toBe(1);
    expect(c.conventions.wattsPerCore).toBe(12);

    const trace = readFileSync(out.files.powerTraceCsv, 'utf8').trim().split('\n');
    expect(trace[0]).toBe('sampler,method,estimated,device,t_s,unix_ms,power_w,utilization_pct,memory_used_mib,memory_total_mib');
    expect(trace.length).toBeGreaterThan(2);
    expect(trace.slice(1).every((l) => l.startsWith('estimate,estimated,true,process,'))).toBe(true);
    expect(readFileSync(out.files.macsCsv!, 'utf8').split('\n')[1]).toContain(',conv,Conv2D,');
    const png = await sharp(out.files.powerPlotPng).metadata();
    expect(png.format).toBe('png');
    const md = readFileSync(out.files.markdown, 'utf8');
    expect(md).toContain('| Paper | 0.030 | 233.46 | 71.21 |');
    expect(md).toContain('| Paper | 135 | 0.7760 | 11.27 | 68.88 | 9.24 |');
    expect(md).toContain('(estimated)');
    expect(md).toContain('ESTIMATES from process CPU time');
    expect(md).toMatch(/GPU utilisation: not measured/);
  });
});
