import * as tf from '@tensorflow/tfjs';
import { addKernelListener, type KernelEvent } from './kernelHook.js';
import { withoutLayerFusion } from '../nn/fusion.js';
import { directParamsByModulePath, summarizeParams, type ModuleSet, type ParamInclusionRule, type ParamSummary } from './params.js';

/**
 * Multiply-accumulate counting at the kernel level: every tfjs kernel a forward pass executes is
 * observed (src/energy/kernelHook.ts) and charged to the module that ran it, so work a method does
 * outside its layers (a functional conv, an attention product) is not missed.
 *
 * Two conventions, both computed on every pass:
 * - true MACs (default, like fvcore): one multiply-accumulate per multiplication of a contraction.
 *   Convolutions (standard, grouped, depthwise, transposed, and their backprop kernels if a backward
 *   pass is counted), linear layers, activation-activation matmuls (attention) and einsum.
 * - 'ptflops': what ptflops' module hooks report and what the paper's Table 6 GMAC column used
 *   (/work/shared/methods/TABLE6.md): convolutions charged per *output* position (a stride-2
 *   transposed conv costs 4x its true MACs), plus bias per output element (per output feature for
 *   Linear), 2 x numel per normalisation layer, numel per ReLU-family activation, input numel per
 *   pooling, output numel per upsampling; attention matmuls, SiLU/GELU/tanh/sigmoid left out.
 */

export type MacConvention = 'true' | 'ptflops';

/** Ops that carry true MACs. */
export type MacOp = 'conv' | 'conv_depthwise' | 'conv_transpose' | 'conv_backprop' | 'linear' | 'matmul' | 'einsum';
/** Ops charged only under the ptflops convention. */
export type PtflopsExtraOp = 'bias' | 'norm' | 'activation' | 'pool' | 'upsample';

export const MAC_TABLE_COUNTED =
  'Counted (true MACs): convolutions (standard, grouped, depthwise, transposed, and conv backprop kernels when a backward pass runs), ' +
  'linear-layer matmuls, activation x activation matmuls (attention), einsum contractions; 1 multiply-accumulate = 1 MAC.';
export const MAC_TABLE_NOT_COUNTED =
  'Not counted (true MACs), as fvcore and ptflops: normalisation layers, activations, pooling, resampling, bias and other ' +
  'element-wise ops (add, mul, sub, div), reductions, softmax, padding, reshapes and copies.';
export const MAC_TABLE_PTFLOPS =
  "ptflops column (the paper's Table 6 convention): convolutions per output position (transposed ones included), + bias per " +
  'output element (Linear: per output feature), + 2 x numel per norm layer, + numel per ReLU/ReLU6/LeakyReLU/PReLU/ELU, ' +
  '+ input numel per pooling (global spatial means included), + output numel per resize; attention matmuls and ' +
  'SiLU/GELU/tanh/sigmoid left out.';

export interface MacRow {
  /** Module that ran the kernel ('' = outside every module, e.g. backprop or a functional op at top level). */
  modulePath: string;
  moduleType: string;
  op: MacOp | PtflopsExtraOp;
  /** tfjs kernel name, or '(module)' for a norm layer charged as a whole. */
  kernel: string;
  /** Consecutive identical kernels merged into this row (e.g. the per-group convs of a grouped conv). */
  calls: number;
  inputShapes: number[][];
  outputShape: number[];
  /** True MACs (0 for rows only the ptflops convention charges). */
  macs: number;
  macsPtflops: number;
  /** Parameters owned directly by the module, on its first row only (0 elsewhere); null without modules. */
  params: number | null;
}

export interface MacTotals {
  macs: number;
  gmac: number;
  macsPtflops: number;
  gmacPtflops: number;
  byOp: Partial<Record<MacOp | PtflopsExtraOp, { macs: number; macsPtflops: number }>>;
}

export interface MacReport {
  counted: string;
  notCounted: string;
  ptflops: string;
  rows: MacRow[];
  totals: MacTotals;
  params: ParamSummary | null;
  kernels: { total: number; counted: number; notCounted: Record<string, number> };
}

export interface CountMacsOptions {
  /** The networks run by `fn`, for per-layer and total parameter counts. */
  modules?: ModuleSet;
  paperRule?: ParamInclusionRule;
}

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

const CONV = new Set(['Conv2D', 'FusedConv2D', 'Conv3D']);
const DEPTHWISE = new Set(['DepthwiseConv2dNative', 'FusedDepthwiseConv2D']);
const MATMUL = new Set(['BatchMatMul', '_FusedMatMul']);
const ACTIVATION = new Set(['Relu', 'Relu6', 'LeakyRelu', 'Prelu', 'Elu']);
const FUSED_ACTIVATION = new Set(['relu', 'relu6', 'leakyrelu', 'prelu', 'elu']);
const POOL = new Set(['MaxPool', 'AvgPool', 'MaxPool3D', 'AvgPool3D']);
const RESIZE = new Set(['ResizeBilinear', 'ResizeNearestNeighbor']);
const BIAS_ADD = new Set(['Add', 'BiasAdd']);
const PAD = new Set(['PadV2', 'MirrorPad']);
/**
 * Module classes ptflops' hooks never see: it looks up `type(module)` in its table, so a subclass
 * of a counted class is skipped. guided-diffusion's GroupNorm32(nn.GroupNorm) is one (DDAD and
 * DiffusionAD UNets): without its norms the DDAD UNet gives the paper's 69.87 GMAC (TABLE6.md).
 */
const PTFLOPS_UNHOOKED_TYPES = new Set(['GroupNorm32']);

function input(e: KernelEvent, name: string): number[] {
  const i = e.inputs.find((x) => x.name === name);
  if (!i) throw new Error(`MAC counter: kernel ${e.kernel} has no input '${name}' (inputs: ${e.inputs.map((x) => x.name).join(', ')})`);
  return i.shape;
}

function einsumMacs(e: KernelEvent): number {
  const eq = String(e.attrs.equation ?? '').replace(/\s/g, '');
  const [lhs] = eq.split('->');
  const terms = lhs.split(',');
  if (terms.length < 2) return 0; // a transpose, trace or sum of one operand multiplies nothing
  const sizes = new Map<string, number>();
  terms.forEach((term, k) => {
    const shape = e.inputs[k]?.shape ?? [];
    [...term].forEach((ch, j) => sizes.set(ch, Math.max(sizes.get(ch) ?? 1, shape[j] ?? 1)));
  });
  // Each output element sums over the contracted indices: one MAC per combination of all indices.
  // (For n > 2 operands tfjs multiplies pairwise; this is the textbook count.)
  return [...sizes.values()].reduce((a, b) => a * b, 1);
}

interface Charged {
  op: MacOp;
  macs: number;
  macsPtflops: number;
}

/** True and ptflops MACs of one MAC-bearing kernel; null if the kernel carries none. */
function macsOf(e: KernelEvent, croppedOut: number[] | undefined): Charged | null {
  const out = e.outputs[0]?.shape ?? [];
  const k = e.kernel;
  const linearOperand = e.inputs.some((i) => i.variable && (i.name === 'a' || i.name === 'b' || /^\d+$/.test(i.name)));
  if (CONV.has(k)) {
    // Filter [kh, kw, inC/groups, outC] (3D: [kd, kh, kw, inC, outC]): out elements x taps x inC per group.
    const f = input(e, 'filter');
    const taps = numel(f.slice(0, -2));
    const m = numel(out) * taps * f[f.length - 2];
    return { op: 'conv', macs: m, macsPtflops: m };
  }
  if (DEPTHWISE.has(k)) {
    const f = input(e, 'filter'); // [kh, kw, C, multiplier]: each output element is one kh x kw window
    const m = numel(out) * f[0] * f[1];
    return { op: 'conv_depthwise', macs: m, macsPtflops: m };
  }
  if (k === 'Conv2DBackpropInput' || k === 'Conv3DBackpropInputV2') {
    // As a transposed conv: every input position scatters taps x outC products (true MACs);
    // ptflops charges taps x inC x outC per *output* position, with PyTorch's cropped output.
    const f = input(e, 'filter'); // [kh, kw, outC, inC]
    const dy = input(e, 'dy');
    const taps = numel(f.slice(0, -2));
    const outC = f[f.length - 2];
    const inC = f[f.length - 1];
    const o = croppedOut ?? out;
    return { op: 'conv_transpose', macs: numel(dy) * taps * outC, macsPtflops: (numel(o) / outC) * taps * inC * outC };
  }
  if (k === 'Conv2DBackpropFilter' || k === 'Conv3DBackpropFilterV2') {
    const fs = (e.attrs.filterShape as number[] | undefined) ?? out;
    const m = numel(input(e, 'dy')) * numel(fs.slice(0, -2)) * fs[fs.length - 2];
    return { op: 'conv_backprop', macs: m, macsPtflops: m };
  }
  if (k === 'DepthwiseConv2dNativeBackpropInput' || k === 'DepthwiseConv2dNativeBackpropFilter') {
    const fs = k.endsWith('Input') ? input(e, 'filter') : ((e.attrs.filterShape as number[] | undefined) ?? out);
    const m = numel(input(e, 'dy')) * fs[0] * fs[1];
    return { op: 'conv_backprop', macs: m, macsPtflops: m };
  }
  if (MATMUL.has(k)) {
    const a = input(e, 'a');
    const K = e.attrs.transposeA === true ? a[a.length - 2] : a[a.length - 1];
    const m = numel(out) * K;
    // A product with a parameter operand is a linear layer; activation x activation is attention,
    // which ptflops' module hooks never see.
    const linear = linearOperand || e.moduleType === 'Linear';
    return { op: linear ? 'linear' : 'matmul', macs: m, macsPtflops: linear ? m : 0 };
  }
  if (k === 'Einsum') {
    const m = einsumMacs(e);
    const linear = linearOperand || e.moduleType === 'Linear';
    return { op: 'einsum', macs: m, macsPtflops: linear ? m : 0 };
  }
  return null;
}

/**
 * Turns the kernel trace of one pass into per-layer rows. Kernels are grouped into module runs
 * (consecutive kernels with the same module path) to recognise bias adds of conv/linear layers and
 * to charge a norm layer once per call, as ptflops' hooks do. A norm module called twice in a row
 * with no kernel in between would be charged once: a limitation of kernel-level observation.
 */
export function macRowsFromKernels(events: readonly KernelEvent[], paramsByPath?: ReadonlyMap<string, number>): {
  rows: MacRow[];
  notCounted: Record<string, number>;
  counted: number;
} {
  const producer = new Map<number, number>();
  events.forEach((e, i) => e.outputs.forEach((o) => producer.set(o.id, i)));
  const producerOf = (e: KernelEvent, name: string): KernelEvent | undefined => {
    const inp = e.inputs.find((x) => x.name === name);
    const p = inp ? producer.get(inp.id) : undefined;
    return p === undefined ? undefined : events[p];
  };
  // PyTorch's transposed conv output is our full output cropped by a following Slice.
  const cropped = new Map<number, number[]>();
  events.forEach((e) => {
    if (e.kernel !== 'Slice') return;
    const x = e.inputs.find((i) => i.name === 'x');
    const p = x ? producer.get(x.id) : undefined;
    if (p !== undefined && events[p].kernel.startsWith('Conv') && events[p].kernel.includes('BackpropInput')) cropped.set(p, e.outputs[0].shape);
  });

  // Module runs.
  const runOf: number[] = [];
  const runMacOp: (MacOp | null)[] = [];
  const runStart: number[] = [];
  events.forEach((e, i) => {
    const same = i > 0 && events[i - 1].modulePath === e.modulePath && events[i - 1].moduleType === e.moduleType;
    if (!same) {
      runStart.push(i);
      runMacOp.push(null);
    }
    runOf.push(runStart.length - 1);
  });
  const charged = events.map((e, i) => macsOf(e, cropped.get(i)));
  charged.forEach((c, i) => {
    const r = runOf[i];
    if (c && runMacOp[r] === null && c.op !== 'matmul') runMacOp[r] = c.op;
  });

  const rows: MacRow[] = [];
  const notCounted: Record<string, number> = {};
  let counted = 0;
  const seenPath = new Set<string>();
  const push = (e: KernelEvent, op: MacRow['op'], kernel: string, inputShapes: number[][], outputShape: number[], macs: number, macsPtflops: number): void => {
    counted++;
    const last = rows[rows.length - 1];
    if (
      last &&
      last.modulePath === e.modulePath &&
      last.op === op &&
      last.kernel === kernel &&
      JSON.stringify(last.inputShapes) === JSON.stringify(inputShapes) &&
      JSON.stringify(last.outputShape) === JSON.stringify(outputShape)
    ) {
      last.calls++;
      last.macs += macs;
      last.macsPtflops += macsPtflops;
      return;
    }
    let params: number | null = null;
    if (paramsByPath) {
      params = seenPath.has(e.modulePath) ? 0 : (paramsByPath.get(e.modulePath) ?? 0);
      seenPath.add(e.modulePath);
    }
    rows.push({ modulePath: e.modulePath, moduleType: e.moduleType, op, kernel, calls: 1, inputShapes, outputShape, macs, macsPtflops, params });
  };
  const shapesOf = (e: KernelEvent): number[][] => e.inputs.map((i) => i.shape);

  const normCharged = new Set<number>();
  events.forEach((e, i) => {
    const out = e.outputs[0]?.shape ?? [];
    const c = charged[i];
    const r = runOf[i];
    const runOp = runMacOp[r];
    if (c) {
      push(e, c.op, e.kernel, shapesOf(e), out, c.macs, c.macsPtflops);
      // Fused kernels carry their bias and activation.
      const bias = e.inputs.find((x) => x.name === 'bias');
      if (bias) {
        const charge = c.op === 'linear' ? out[out.length - 1] : numel(out);
        push(e, 'bias', e.kernel, [bias.shape], out, 0, charge);
      }
      if (FUSED_ACTIVATION.has(String(e.attrs.activation ?? ''))) push(e, 'activation', e.kernel, [out], out, 0, numel(out));
      return;
    }
    if (/norm/i.test(e.moduleType) && runOp === null && !PTFLOPS_UNHOOKED_TYPES.has(e.moduleType)) {
      // ptflops charges a norm layer 2 x numel of its input once per call; kernel-level, the
      // largest tensor the layer produced has the input's numel.
      if (normCharged.has(r)) return;
      normCharged.add(r);
      let end = i;
      while (end + 1 < events.length && runOf[end + 1] === r) end++;
      let biggest = out;
      for (let j = i; j <= end; j++) for (const o of events[j].outputs) if (numel(o.shape) > numel(biggest)) biggest = o.shape;
      push(e, 'norm', '(module)', [biggest], biggest, 0, 2 * numel(biggest));
      // A ReLU run inside the norm module (BatchNorm2d.callWithRelu: Sequential's BN + ReLU pair)
      // is still PyTorch's separate nn.ReLU, which ptflops charges numel of its output.
      for (let j = i; j <= end; j++) {
        const a = events[j];
        if (ACTIVATION.has(a.kernel)) push(a, 'activation', a.kernel, shapesOf(a), a.outputs[0]?.shape ?? [], 0, numel(a.outputs[0]?.shape ?? []));
      }
      return;
    }
    if (BIAS_ADD.has(e.kernel) && runOp !== null && runOp !== 'conv_backprop') {
      const b = e.inputs.find((x) => x.variable && x.shape.length === 1);
      if (b) {
        const charge = runOp === 'linear' ? out[out.length - 1] : numel(out);
        push(e, 'bias', e.kernel, shapesOf(e), out, 0, charge);
        return;
      }
    }
    if (ACTIVATION.has(e.kernel)) {
      push(e, 'activation', e.kernel, shapesOf(e), out, 0, numel(out));
      return;
    }
    if (POOL.has(e.kernel)) {
      // ptflops sees the unpadded input (PyTorch pads inside the pooling op; we pad before it).
      const padded = producerOf(e, 'x');
      const x = padded && PAD.has(padded.kernel) ? input(padded, 'x') : input(e, 'x');
      push(e, 'pool', e.kernel, [x], out, 0, numel(x));
      return;
    }
    if (e.kernel === 'Mean' && e.inputs[0]?.shape.length === 4 && JSON.stringify(e.attrs.axis) === '[1,2]') {
      // A spatial mean of an NHWC map is adaptive/global average pooling.
      push(e, 'pool', e.kernel, shapesOf(e), out, 0, numel(e.inputs[0].shape));
      return;
    }
    if (RESIZE.has(e.kernel)) {
      push(e, 'upsample', e.kernel, shapesOf(e), out, 0, numel(out));
      return;
    }
    notCounted[e.kernel] = (notCounted[e.kernel] ?? 0) + 1;
  });
  return { rows, notCounted, counted };
}

export function macTotals(rows: readonly MacRow[]): MacTotals {
  const byOp: MacTotals['byOp'] = {};
  let macs = 0;
  let macsPtflops = 0;
  for (const r of rows) {
    macs += r.macs;
    macsPtflops += r.macsPtflops;
    const b = (byOp[r.op] ??= { macs: 0, macsPtflops: 0 });
    b.macs += r.macs;
    b.macsPtflops += r.macsPtflops;
  }
  return { macs, gmac: macs / 1e9, macsPtflops, gmacPtflops: macsPtflops / 1e9, byOp };
}

/**
 * Runs `fn` once (synchronously, inside tf.tidy, so nothing it creates survives) and counts the
 * MACs of every kernel it executes. Works on every backend: only the engine is observed.
 */
export function countMacs(fn: () => unknown, opts: CountMacsOptions = {}): MacReport {
  const events: KernelEvent[] = [];
  const remove = addKernelListener((e) => {
    if (e) events.push(e);
  }, { detail: true });
  try {
    // Unfused layers (src/nn/fusion.ts): kernels line up with PyTorch's modules (a BatchNorm
    // folded into its conv would vanish from the rows and from the parameters that ran).
    withoutLayerFusion(() => tf.tidy(() => {
      const r = fn();
      if (r instanceof Promise) throw new Error('countMacs: fn must be synchronous (a forward pass); it returned a Promise');
    }));
  } finally {
    remove();
  }
  const paramsByPath = opts.modules ? directParamsByModulePath(opts.modules) : undefined;
  const { rows, notCounted, counted } = macRowsFromKernels(events, paramsByPath);
  const used = new Set<number>();
  for (const e of events) for (const i of e.inputs) if (i.variable) used.add(i.id);
  return {
    counted: MAC_TABLE_COUNTED,
    notCounted: MAC_TABLE_NOT_COUNTED,
    ptflops: MAC_TABLE_PTFLOPS,
    rows,
    totals: macTotals(rows),
    params: opts.modules ? summarizeParams(opts.modules, opts.paperRule, used) : null,
    kernels: { total: events.length, counted, notCounted },
  };
}

/** MACs of a report under one convention. */
export function totalMacs(report: MacReport, convention: MacConvention = 'true'): number {
  return convention === 'true' ? report.totals.macs : report.totals.macsPtflops;
}

const csvCell = (v: string | number | null): string => {
  const s = v === null ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** macs.csv: one row per (merged) kernel; shapes as 'AxBxC' joined by ';'. */
export function macsCsv(report: MacReport): string {
  const head = ['module_path', 'module_type', 'op', 'kernel', 'calls', 'input_shapes', 'output_shape', 'macs', 'macs_ptflops', 'params'];
  const lines = [head.join(',')];
  for (const r of report.rows) {
    lines.push(
      [
        r.modulePath,
        r.moduleType,
        r.op,
        r.kernel,
        r.calls,
        r.inputShapes.map((s) => s.join('x')).join(';'),
        r.outputShape.join('x'),
        r.macs,
        r.macsPtflops,
        r.params,
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}

/** A fixed-width text table for logs; its header says what is and is not counted. */
export function formatMacTable(report: MacReport, opts: { maxRows?: number } = {}): string {
  const rows = report.rows.slice(0, opts.maxRows ?? report.rows.length);
  const lines = [`# ${report.counted}`, `# ${report.notCounted}`, `# ${report.ptflops}`];
  lines.push(['module', 'op', 'kernel', 'in', 'out', 'MACs', 'MACs(ptflops)', 'params'].join('\t'));
  for (const r of rows) {
    lines.push(
      [
        r.modulePath || '(top)',
        r.op,
        r.calls > 1 ? `${r.kernel} x${r.calls}` : r.kernel,
        r.inputShapes.map((s) => `[${s.join(',')}]`).join(' '),
        `[${r.outputShape.join(',')}]`,
        r.macs,
        r.macsPtflops,
        r.params ?? '',
      ].join('\t'),
    );
  }
  if (rows.length < report.rows.length) lines.push(`... ${report.rows.length - rows.length} more rows`);
  const t = report.totals;
  lines.push(`total: ${t.gmac.toFixed(4)} GMAC (true), ${t.gmacPtflops.toFixed(4)} GMAC (ptflops)`);
  if (report.params) {
    const p = report.params;
    lines.push(
      `params: ${p.uniqueM.toFixed(4)} M unique, ${p.runM === null ? '-' : p.runM.toFixed(4)} M run, ` +
        `${p.paperRuleM.toFixed(4)} M under paper rule (${p.paperRuleDescription}); ${p.sizeMiBFloat32.toFixed(2)} MiB float32`,
    );
  }
  return lines.join('\n');
}
