import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, hostname, platform, totalmem } from 'node:os';
import { join } from 'node:path';
import { macsCsv, MAC_TABLE_COUNTED, MAC_TABLE_NOT_COUNTED, MAC_TABLE_PTFLOPS, type MacReport } from './macs.js';
import type { CostMeter, CostReport, PhaseCosts, SamplerStatus } from './meter.js';
import { paperModelSize } from './params.js';
import { powerPlotSvg, writePowerPlotPng } from './plot.js';
import type { PowerSample } from './samplers/types.js';
import type { InferenceTiming } from './timing.js';

/**
 * Per-run cost outputs: costs.json (every figure with its unit and how it was measured),
 * power-trace.csv, macs.csv, power.png and costs.md (Tables 5 and 6 of the paper, its numbers beside
 * ours). A figure that was not measured is null, never 0; an estimate says so in every file.
 */

/** One reported figure. `method` names how it was obtained; null value = not measured. */
export interface Quantity {
  value: number | null;
  unit: string;
  method: string | null;
  estimated: boolean;
  note?: string;
}

/** The paper's numbers for one method (printed strings or numbers), supplied by the caller. */
export interface PaperCostRow {
  co2Kg?: number | string | null;
  energyKj?: number | string | null;
  gpuPowerW?: number | string | null;
  trainTimeS?: number | string | null;
  inferenceTimeS?: number | string | null;
  gpuUtilPct?: number | string | null;
  /** The paper's "Model Size (MB)" column, which is millions of parameters. */
  modelSizeMb?: number | string | null;
  gmac?: number | string | null;
  source?: string;
}

export interface CostsJson {
  schema: 'adbench-costs/1';
  method: string;
  createdAt: string;
  machine: { hostname: string; platform: string; cpuModel: string; cpuCores: number; totalMemBytes: number; node: string; tfjsBackend: string | null };
  conventions: {
    co2FactorKgPerKwh: number | null;
    pue: number | null;
    wattsPerCore: number | null;
    energyPhase: string;
    energyHeadline: string;
    macs: { counted: string; notCounted: string; ptflops: string; pass: string | null };
    modelSize: string;
  };
  samplers: SamplerStatus[];
  table5: { co2Kg: Quantity; energyKj: Quantity; energyKwh: Quantity; gpuPowerW: Quantity; netEnergyKj: Quantity; netCo2Kg: Quantity };
  table6: {
    trainTimeS: Quantity;
    inferenceTimeS: Quantity;
    inferenceTimeSBatchN: Quantity;
    gpuUtilPct: Quantity;
    modelSizeMParams: Quantity;
    paramsMUnique: Quantity;
    paramsMRun: Quantity;
    sizeMiBFloat32: Quantity;
    gmac: Quantity;
    gmacPtflops: Quantity;
  };
  memory: { tfPeakBytes: Quantity; tfPeakTensors: Quantity; rssPeakBytes: Quantity; gpuPeakMemoryUsedMiB: Quantity; gpuMemoryTotalMiB: Quantity };
  phases: PhaseCosts[];
  inference: InferenceTiming[];
  macs: Pick<MacReport, 'totals' | 'params' | 'kernels'> | null;
  paper: PaperCostRow | null;
  notes: string[];
}

export interface CostArtifactsInput {
  /** Method name for titles ('PatchCore'). */
  method: string;
  /** Source of phases and trace; or give `report` (+ `trace`) directly. */
  meter?: CostMeter;
  report?: CostReport;
  trace?: readonly PowerSample[];
  macs?: MacReport | null;
  /** What the counted pass was, e.g. 'one forward of stem..layer3, 1x224x224x3'. */
  macsPass?: string;
  inference?: readonly InferenceTiming[];
  paper?: PaperCostRow | null;
  /** Phase that Tables 5/6 report; default 'train'. */
  energyPhase?: string;
  /** Active tfjs backend ('wasm', 'cpu', 'tensorflow'). */
  backend?: string;
  notes?: readonly string[];
}

export interface CostArtifacts {
  costs: CostsJson;
  markdown: string;
  files: { costsJson: string; powerTraceCsv: string; macsCsv: string | null; powerPlotPng: string; markdown: string };
}

function q(value: number | null | undefined, unit: string, method: string | null, estimated = false, note?: string): Quantity {
  const v = value === undefined || value === null || !Number.isFinite(value) ? null : value;
  const out: Quantity = { value: v, unit, method: v === null ? null : method, estimated: v === null ? false : estimated };
  if (note) out.note = note;
  return out;
}

const NOT_MEASURED = (why: string): Quantity => ({ value: null, unit: '', method: null, estimated: false, note: why });

export function buildCostsJson(input: CostArtifactsInput): CostsJson {
  const report = input.report ?? input.meter?.report() ?? null;
  const phaseName = input.energyPhase ?? 'train';
  const phase = report?.phases.filter((p) => p.phase === phaseName).at(-1) ?? null;
  const e = phase?.energy ?? null;
  const missing = report ? `no '${phaseName}' phase recorded` : 'no cost meter ran';
  const inference = [...(input.inference ?? [])];
  const b1 = inference.find((t) => t.batch === 1) ?? null;
  const bN = inference.filter((t) => t.batch > 1).sort((x, y) => y.batch - x.batch)[0] ?? null;
  const macs = input.macs ?? null;
  const p = macs?.params ?? null;
  const gpuEnergy = phase?.gpuEnergy ?? null;
  const energyMethod = e ? `${e.method}${e.estimated ? ' (ESTIMATED, not a measurement)' : ''}, ${e.domain} energy over phase '${phaseName}'` : null;

  const table5: CostsJson['table5'] = phase
    ? {
        co2Kg: q(e?.co2Kg, 'kg CO2', e ? `${energyMethod}; kWh x ${e.co2FactorKgPerKwh} kg/kWh x PUE ${e.pue}` : null, e?.estimated),
        energyKj: q(e?.kJ, 'kJ', energyMethod, e?.estimated),
        energyKwh: q(e?.kWh, 'kWh', energyMethod, e?.estimated),
        gpuPowerW: gpuEnergy
          ? q(gpuEnergy.meanPowerW, 'W', `${gpuEnergy.method}: GPU energy / covered seconds`)
          : NOT_MEASURED('no GPU power source ran'),
        netEnergyKj: phase.net ? q(phase.net.energy.kJ, 'kJ', `${energyMethod} minus idle ${phase.net.idlePowerW.toFixed(2)} W x ${phase.net.energy.durationS.toFixed(1)} s (phase '${phase.net.idlePhase}')`, phase.net.energy.estimated) : NOT_MEASURED('no idle baseline measured'),
        netCo2Kg: phase.net ? q(phase.net.energy.co2Kg, 'kg CO2', 'net energy x factor x PUE', phase.net.energy.estimated) : NOT_MEASURED('no idle baseline measured'),
      }
    : {
        co2Kg: NOT_MEASURED(missing),
        energyKj: NOT_MEASURED(missing),
        energyKwh: NOT_MEASURED(missing),
        gpuPowerW: NOT_MEASURED(missing),
        netEnergyKj: NOT_MEASURED(missing),
        netCo2Kg: NOT_MEASURED(missing),
      };
  if (phase && !e) {
    table5.co2Kg = NOT_MEASURED('no energy source produced a value');
    table5.energyKj = NOT_MEASURED('no energy source produced a value');
    table5.energyKwh = NOT_MEASURED('no energy source produced a value');
  }

  const table6: CostsJson['table6'] = {
    trainTimeS: phase ? q(phase.wallS, 's', `wall clock of phase '${phaseName}'`) : NOT_MEASURED(missing),
    inferenceTimeS: b1 ? q(b1.medianSPerImage, 's/image', b1.method) : NOT_MEASURED('no batch-1 inference timing given'),
    inferenceTimeSBatchN: bN ? q(bN.medianSPerImage, 's/image', bN.method) : NOT_MEASURED('no batch>1 inference timing given'),
    gpuUtilPct: phase?.gpu?.meanUtilizationPct != null ? q(phase.gpu.meanUtilizationPct, '%', 'mean nvidia-smi utilization.gpu over the phase') : NOT_MEASURED('no nvidia-smi trace'),
    modelSizeMParams: p ? q(p.paperRuleM, 'M params', `paper inclusion rule: ${p.paperRuleDescription} (the paper's "Model Size (MB)" is millions of parameters)`) : NOT_MEASURED('no MAC/parameter count given'),
    paramsMUnique: p ? q(p.uniqueM, 'M params', 'distinct parameters of all networks built') : NOT_MEASURED('no MAC/parameter count given'),
    paramsMRun: p && p.runM !== null ? q(p.runM, 'M params', 'distinct parameters that entered a kernel in the counted pass') : NOT_MEASURED('no MAC/parameter count given'),
    sizeMiBFloat32: p ? q(p.sizeMiBFloat32, 'MiB', 'unique parameters x 4 bytes / 2^20') : NOT_MEASURED('no MAC/parameter count given'),
    gmac: macs ? q(macs.totals.gmac, 'GMAC', `true MACs, kernel-level count${input.macsPass ? ` of ${input.macsPass}` : ''}`) : NOT_MEASURED('no MAC count given'),
    gmacPtflops: macs ? q(macs.totals.gmacPtflops, 'GMAC', `ptflops convention (the paper's Table 6)${input.macsPass ? ` of ${input.macsPass}` : ''}`) : NOT_MEASURED('no MAC count given'),
  };

  const memory: CostsJson['memory'] = {
    tfPeakBytes: phase?.process.tfPeakBytes != null ? q(phase.process.tfPeakBytes, 'bytes', 'tfjs engine numBytes, max after every kernel of the phase') : NOT_MEASURED(phase ? 'tfjs memory not tracked' : missing),
    tfPeakTensors: phase?.process.tfPeakTensors != null ? q(phase.process.tfPeakTensors, 'tensors', 'tfjs engine numTensors, max after every kernel of the phase') : NOT_MEASURED(phase ? 'tfjs memory not tracked' : missing),
    rssPeakBytes: phase ? q(phase.process.rssPeakBytes, 'bytes', 'process RSS, polled (timer and every 256 kernels)') : NOT_MEASURED(missing),
    gpuPeakMemoryUsedMiB: phase?.gpu?.peakMemoryUsedMiB != null ? q(phase.gpu.peakMemoryUsedMiB, 'MiB', 'max nvidia-smi memory.used over the phase (all processes on the GPU)') : NOT_MEASURED('no nvidia-smi trace'),
    gpuMemoryTotalMiB: phase?.gpu?.memoryTotalMiB != null ? q(phase.gpu.memoryTotalMiB, 'MiB', 'nvidia-smi memory.total') : NOT_MEASURED('no nvidia-smi trace'),
  };

  const cpu = cpus();
  return {
    schema: 'adbench-costs/1',
    method: input.method,
    createdAt: new Date().toISOString(),
    machine: {
      hostname: hostname(),
      platform: platform(),
      cpuModel: cpu[0]?.model ?? 'unknown',
      cpuCores: cpu.length,
      totalMemBytes: totalmem(),
      node: process.version,
      tfjsBackend: input.backend ?? null,
    },
    conventions: {
      co2FactorKgPerKwh: report?.co2FactorKgPerKwh ?? null,
      pue: report?.pue ?? null,
      wattsPerCore: report?.wattsPerCore ?? null,
      energyPhase: phaseName,
      energyHeadline: 'GPU energy (nvml counter, else nvidia-smi integral) when a GPU source ran, as the paper; otherwise CPU energy (RAPL, else the CPU-time estimate, labelled estimated)',
      macs: { counted: MAC_TABLE_COUNTED, notCounted: MAC_TABLE_NOT_COUNTED, ptflops: MAC_TABLE_PTFLOPS, pass: input.macsPass ?? null },
      modelSize: 'the paper\'s "Model Size (MB)" = millions of parameters under its inclusion rule, truncated to 2 decimals; MiB of float32 reported separately',
    },
    samplers: report?.samplers ?? [],
    table5,
    table6,
    memory,
    phases: report?.phases ?? [],
    inference,
    macs: macs ? { totals: macs.totals, params: macs.params, kernels: macs.kernels } : null,
    paper: input.paper ?? null,
    notes: [...(input.notes ?? [])],
  };
}

const csvCell = (v: string | number | boolean | null): string => {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** power-trace.csv: every sample of every source; `estimated` is true for the CPU-time estimate. */
export function powerTraceCsv(trace: readonly PowerSample[], t0Ms?: number): string {
  const start = t0Ms ?? trace.reduce((m, s) => Math.min(m, s.tMs), trace.length ? Infinity : 0);
  const lines = ['sampler,method,estimated,device,t_s,unix_ms,power_w,utilization_pct,memory_used_mib,memory_total_mib'];
  for (const s of trace) {
    lines.push(
      [s.sampler, s.method, s.method === 'estimated', s.device, ((s.tMs - start) / 1000).toFixed(3), s.tMs, s.powerW, s.utilizationPct, s.memoryUsedMiB, s.memoryTotalMiB]
        .map(csvCell)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}

function paperNum(v: number | string | null | undefined): number | null {
  if (v === null || v === undefined || v === '') return null;
  const n = typeof v === 'number' ? v : Number(String(v).replace(/,/g, ''));
  return Number.isFinite(n) ? n : null;
}

function fmt(v: number | null, digits = 4): string {
  if (v === null) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 0.001) return String(Number(v.toPrecision(digits)));
  return v.toExponential(2);
}

function cell(x: Quantity, digits = 4, show?: (v: number) => string): string {
  if (x.value === null) return 'n/a';
  const s = show ? show(x.value) : fmt(x.value, digits);
  return x.estimated ? `${s} (estimated)` : s;
}

function ratio(ours: Quantity, paper: number | string | null | undefined): string {
  const p = paperNum(paper);
  if (ours.value === null || p === null || p === 0) return '–';
  return `${fmt(ours.value / p, 3)}×`;
}

const paperCell = (v: number | string | null | undefined): string => (v === null || v === undefined || v === '' ? '–' : String(v));

/** The markdown section: Tables 5 and 6 laid out as the paper, paper row then ours, then how each was measured. */
export function costsMarkdown(c: CostsJson): string {
  const p = c.paper ?? {};
  const t5 = c.table5;
  const t6 = c.table6;
  const lines: string[] = [];
  lines.push(`## Costs: ${c.method}`, '');
  const running = c.samplers.filter((s) => s.running).map((s) => `${s.id} (${s.method})`).join(', ') || 'none';
  const estimated = t5.energyKj.estimated;
  lines.push(
    `Energy phase \`${c.conventions.energyPhase}\`; sources run: ${running}. CO2 factor ${c.conventions.co2FactorKgPerKwh ?? 'n/a'} kg/kWh, PUE ${c.conventions.pue ?? 'n/a'}` +
      (c.conventions.wattsPerCore !== null ? `; CPU estimate at ${c.conventions.wattsPerCore} W per busy core` : '') +
      '.',
  );
  if (estimated) lines.push('', '**Energy and CO2 below are ESTIMATES from process CPU time, not measurements** (no GPU or RAPL counter was readable).');
  lines.push('', '**Table 5 (environmental impact)**', '');
  lines.push('| | CO2 (kg) | Total Energy (kJ) | GPU Power (W) |', '|---|---:|---:|---:|');
  lines.push(`| Paper${p.source ? ` (${p.source})` : ''} | ${paperCell(p.co2Kg)} | ${paperCell(p.energyKj)} | ${paperCell(p.gpuPowerW)} |`);
  lines.push(`| Ours | ${cell(t5.co2Kg, 3)} | ${cell(t5.energyKj, 5)} | ${cell(t5.gpuPowerW, 4)} |`);
  lines.push(`| Ours / paper | ${ratio(t5.co2Kg, p.co2Kg)} | ${ratio(t5.energyKj, p.energyKj)} | ${ratio(t5.gpuPowerW, p.gpuPowerW)} |`);
  if (t5.netEnergyKj.value !== null) lines.push(`| Ours, net of idle | ${cell(t5.netCo2Kg, 3)} | ${cell(t5.netEnergyKj, 5)} | |`);
  lines.push('', '**Table 6 (hardware)**', '');
  lines.push('| | Training Time (s) | Inference Time (s) | GPU Utilization (%) | Model Size (MB) | GMAC |', '|---|---:|---:|---:|---:|---:|');
  lines.push(`| Paper | ${paperCell(p.trainTimeS)} | ${paperCell(p.inferenceTimeS)} | ${paperCell(p.gpuUtilPct)} | ${paperCell(p.modelSizeMb)} | ${paperCell(p.gmac)} |`);
  const gm = t6.gmac.value === null ? 'n/a' : `${t6.gmac.value.toFixed(2)} (ptflops ${t6.gmacPtflops.value === null ? 'n/a' : t6.gmacPtflops.value.toFixed(2)})`;
  lines.push(
    `| Ours | ${cell(t6.trainTimeS, 5)} | ${cell(t6.inferenceTimeS, 4)} | ${cell(t6.gpuUtilPct, 4)} | ${cell(t6.modelSizeMParams, 4, (v) => paperModelSize(v * 1e6))} | ${gm} |`,
  );
  lines.push(
    `| Ours / paper | ${ratio(t6.trainTimeS, p.trainTimeS)} | ${ratio(t6.inferenceTimeS, p.inferenceTimeS)} | ${ratio(t6.gpuUtilPct, p.gpuUtilPct)} | ${ratio(t6.modelSizeMParams, p.modelSizeMb)} | ${ratio(t6.gmacPtflops, p.gmac)} (ptflops) |`,
  );
  lines.push('', 'How each figure was measured:', '');
  const how: [string, Quantity][] = [
    ['CO2', t5.co2Kg],
    ['Total energy', t5.energyKj],
    ['GPU power', t5.gpuPowerW],
    ['Training time', t6.trainTimeS],
    ['Inference time (batch 1)', t6.inferenceTimeS],
    ['Inference time (batch N)', t6.inferenceTimeSBatchN],
    ['GPU utilisation', t6.gpuUtilPct],
    ['Model size', t6.modelSizeMParams],
    ['GMAC', t6.gmac],
    ['GMAC (ptflops)', t6.gmacPtflops],
  ];
  for (const [name, x] of how) lines.push(`- ${name}: ${x.value === null ? `not measured (${x.note ?? 'n/a'})` : `${x.method}${x.estimated && !/ESTIMATED/.test(x.method ?? '') ? ' (ESTIMATED)' : ''}`}`);
  if (t6.paramsMUnique.value !== null) {
    lines.push(
      `- Parameters: ${fmt(t6.paramsMUnique.value, 6)} M unique, ${fmt(t6.paramsMRun.value, 6)} M run, ${fmt(t6.modelSizeMParams.value, 6)} M under the paper rule; ${fmt(t6.sizeMiBFloat32.value, 5)} MiB as float32`,
    );
  }
  lines.push(`- MACs: ${c.conventions.macs.notCounted}`);
  return lines.join('\n') + '\n';
}

/** Writes costs.json, power-trace.csv, macs.csv (when a MAC report is given), power.png and costs.md. */
export async function writeCostArtifacts(runDir: string, input: CostArtifactsInput): Promise<CostArtifacts> {
  await mkdir(runDir, { recursive: true });
  const costs = buildCostsJson(input);
  const trace = [...(input.trace ?? input.meter?.trace() ?? [])];
  const phases = costs.phases.map((p) => ({ phase: p.phase, startMs: Date.parse(p.startedAt), endMs: Date.parse(p.endedAt) }));
  const t0 = Math.min(trace.reduce((m, s) => Math.min(m, s.tMs), Infinity), ...phases.map((p) => p.startMs));
  const files = {
    costsJson: join(runDir, 'costs.json'),
    powerTraceCsv: join(runDir, 'power-trace.csv'),
    macsCsv: input.macs ? join(runDir, 'macs.csv') : null,
    powerPlotPng: join(runDir, 'power.png'),
    markdown: join(runDir, 'costs.md'),
  };
  const markdown = costsMarkdown(costs);
  await writeFile(files.costsJson, JSON.stringify(costs, null, 2) + '\n');
  await writeFile(files.powerTraceCsv, powerTraceCsv(trace, Number.isFinite(t0) ? t0 : undefined));
  if (input.macs && files.macsCsv) await writeFile(files.macsCsv, macsCsv(input.macs));
  const estimatedOnly = trace.length > 0 && trace.every((s) => s.method === 'estimated');
  await writePowerPlotPng(files.powerPlotPng, powerPlotSvg(trace, { title: `${input.method}: power over time${estimatedOnly ? ' (ESTIMATED from CPU time)' : ''}`, phases }));
  await writeFile(files.markdown, markdown);
  return { costs, markdown, files };
}
