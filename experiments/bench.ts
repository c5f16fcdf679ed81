/**
 * `npm run bench`: CPU throughput of the building blocks that decide training and fitting time,
 * for one tfjs backend, optionally side by side with PyTorch doing the same work.
 *
 *   npm run bench -- [--backend wasm|cpu|tensorflow] [--torch] [--torch-threads 2]
 *                    [--sections conv,wrn50,train,coreset] [--train-parts 0,1] [--repeat N]
 *                    [--quick] [--json out.json]
 *
 * Sections (each runs in its own child process, so "peak memory" is that section's own peak):
 *   conv     forward and forward+backward GMAC/s of single convolutions at typical shapes
 *            (experiments/bench-conv.ts's CASES, batch 4); fwd+bwd counts 3x the forward MACs
 *   wrn50    WideResNet-50-2 stem..layer3 feature extraction (PatchCore's backbone), eval mode,
 *            256x256, batch 1 and 8 (batch 8 skipped with --quick); seconds per image
 *   train    one training step of each landed method: DRAEM (src/models/draem networks and loss,
 *            Adam) at its cpu profile (64², widths 16/8, batch 8), at 128² batch 4 with 1/4 widths,
 *            and the issue's reference (128², batch 4, official widths, 97.4 M parameters: fits
 *            wasm's 4 GB heap only with gradient checkpointing; skipped with --quick and on the
 *            cpu backend), each with its DRAEM profile's gradientCheckpointing
 *            (ADBENCH_CHECKPOINTING=off|block|layer overrides); RIAD at its cpu profile
 *            (Riad.trainingLoss; no PyTorch counterpart yet); CutPaste (CutPaste.trainingLoss, SGD) at
 *            TABLE6.md's reference (128², 4 images × 3 views) and at its cpu profile (64², 8 × 3); Patch
 *            SVDD at TABLE6.md's reference (4 samples per stream, 64/32-px patches; PatchSvdd.trainingLoss)
 *   coreset  PatchCore coreset for 200 images at the cpu profile: 200 x 16x16 patches = 51,200
 *            vectors of 1024 -> random projection to 128 -> 1% greedy selection (512 picks);
 *            single-threaded and threaded selection, which must pick identical indices
 * On wasm, convolutions and matMuls run on our SIMD GEMM (src/nn/simd: relaxed-SIMD FMA, worker
 * threads = ADBENCH_SIMD_THREADS, default the core count); ADBENCH_SIMD=off gives XNNPACK's for A/B.
 * The rest of the wasm backend is single-threaded unless ADBENCH_WASM_THREADS=N is set
 * (src/backendThreads.ts); the coreset's own worker threads follow ADBENCH_CORESET_THREADS (default 2).
 * ADBENCH_LAYER_FUSION=0 runs the layers unfused (plain op chains, src/nn/fusion.ts), for A/B runs.
 * With --torch, experiments/bench/torch_bench.py runs the same shapes in PyTorch (/usr/bin/python3,
 * `--torch-threads` threads) right after each section, and the table shows the throughput ratio
 * tfjs/PyTorch (1.0 = parity; > 1 = tfjs faster). Weights and data are random: timing does not
 * depend on them. The machine is shared: every row carries the 1-minute load average measured
 * when it started. Results and how to read them: docs/performance.md.
 */
import { disjointMasks } from '../src/augment/riad.js';
import * as tf from '@tensorflow/tfjs';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseBackendChoice, type BackendChoice } from '../src/backend.js';
import { setupRuntime } from '../src/runtime.js';
import { activeWasmThreads } from '../src/backendThreads.js';
import { simdConvEngine } from '../src/nn/kernels/conv2d-simd.js';
import { layerFusionEnabled } from '../src/nn/fusion.js';
import { Riad } from '../src/models/riad/model.js';
import { CutPaste, type CutPasteBatch } from '../src/models/cutpaste/model.js';
import { CUTPASTE_PROFILES, scarParamsFor } from '../src/models/cutpaste/config.js';
import { SGD } from '../src/train/optimizers/sgd.js';
import { RIAD_PROFILES } from '../src/models/riad/config.js';
import { PATCHSVDD_PROFILES } from '../src/models/patchsvdd/config.js';
import { PatchSvdd } from '../src/models/patchsvdd/model.js';
import { buildPatchBatch } from '../src/models/patchsvdd/sampling.js';
import { GLASS_PROFILES, Glass } from '../src/models/glass/index.js';
import { TINY_DARKNET_DEFAULT_TAPS } from '../src/models/backbones/darknet.js';
import { getBackboneSpec, type FeatureBackbone } from '../src/models/backbones/index.js';
import { countMacs, totalMacs } from '../src/energy/macs.js';
import { ResNet } from '../src/models/backbones/resnet.js';
import { setInitSeed } from '../src/nn/init.js';
import { Adam, AdamW } from '../src/train/optimizers/adam.js';
import { DRAEM_CHECKPOINTING, DiscriminativeSubNetwork, ReconstructiveSubNetwork, draemForward, type DraemCheckpointing } from '../src/models/draem/network.js';
import { DRAEM_PROFILES, type DraemProfile } from '../src/models/draem/config.js';
import { draemLoss } from '../src/models/draem/loss.js';
import { approximateGreedyCoreset, defaultCoresetThreads, randomProjection, type VectorSet } from '../src/models/patchcore/coreset.js';
import { Rng } from '../src/util/rng.js';
import { CASES as CONV_CASES, type Case as ConvCase } from './bench-conv.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const TORCH_SCRIPT = join(HERE, 'bench', 'torch_bench.py');
const PYTHON = '/usr/bin/python3';
const ALL_SECTIONS = ['conv', 'wrn50', 'train', 'coreset'] as const;
type Section = (typeof ALL_SECTIONS)[number];

interface Args {
  backend: BackendChoice;
  torch: boolean;
  torchThreads: number;
  sections: Section[];
  quick: boolean;
  json: string | null;
  child: Section | null;
  /** Sub-job of a section (train: index into DRAEM_STEPS), each in its own child process. */
  part: number;
  /** --repeat N: alternate tfjs/PyTorch N times and keep each side's fastest run. */
  repeat: number;
  /** --train-parts 0,1: only these DRAEM_STEPS. */
  trainParts: number[] | null;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sections = (get('--sections') ?? ALL_SECTIONS.join(',')).split(',').filter(Boolean);
  for (const s of sections) {
    if (!(ALL_SECTIONS as readonly string[]).includes(s)) throw new Error(`--sections: unknown '${s}' (have ${ALL_SECTIONS.join(', ')})`);
  }
  const child = get('--child');
  return {
    backend: parseBackendChoice(get('--backend') ?? 'wasm'),
    torch: argv.includes('--torch'),
    torchThreads: Number(get('--torch-threads') ?? 2),
    sections: sections as Section[],
    quick: argv.includes('--quick'),
    json: get('--json') ?? null,
    child: (child as Section | undefined) ?? null,
    part: Number(get('--part') ?? 0),
    repeat: Math.max(1, Number(get('--repeat') ?? 1)),
    trainParts: get('--train-parts')?.split(',').map(Number) ?? null,
  };
}

/** One measured item of a section, on the tfjs side; torch fields are filled in by the parent. */
interface Row {
  section: Section;
  item: string;
  /** Seconds per unit (per call, per image, per step...). */
  seconds: number;
  unit: string;
  /** MACs per unit (null when GMAC/s makes no sense, e.g. the coreset). */
  macs: number | null;
  reps: number;
  /** CPU seconds per wall second while timing (all threads): the cores the work really got. */
  cores?: number;
  note?: string;
  torchSeconds?: number;
  torchCores?: number;
  load1?: number;
  /** Peak memory line of the child (and PyTorch) process that measured this row. */
  memory?: string;
}

interface ChildResult {
  section: Section;
  backend: string;
  flags: Record<string, boolean | number>;
  rows: Row[];
  peakRssMb: number;
  wasmHeapMb: number | null;
  notes: string[];
}

// ------------------------------------------------------------------------------------- timing

/** Seconds per call: optional warm-up, then repeat until `budget` seconds or `maxReps`. */
function timeIt(f: () => void, budget: number, maxReps = 50, warm = true): { s: number; reps: number; cores: number } {
  if (warm) f();
  let reps = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  do {
    f();
    reps++;
  } while (performance.now() - t0 < budget * 1000 && reps < maxReps);
  const wall = (performance.now() - t0) / 1000;
  return { s: wall / reps, reps, cores: cpuSeconds(c0) / wall };
}

/** CPU seconds (all threads of this process) since `c0`. */
function cpuSeconds(c0: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
}

const syncAll = (ts: tf.Tensor | tf.Tensor[] | Record<string, tf.Tensor>): void => {
  const list = ts instanceof tf.Tensor ? [ts] : Array.isArray(ts) ? ts : Object.values(ts);
  for (const t of list) t.dataSync();
};

// ------------------------------------------------------------------------------------- sections

function convSection(quick: boolean): Row[] {
  const rows: Row[] = [];
  const budget = quick ? 0.3 : 1.5;
  for (const cs of quick ? CONV_CASES.slice(0, 3) : CONV_CASES) {
    const p = cs.k >> 1;
    const wShape: [number, number, number, number] = cs.depthwise ? [cs.k, cs.k, cs.c, cs.o / cs.c] : [cs.k, cs.k, cs.c, cs.o];
    const xp = tf.tidy(() => tf.pad(tf.randomNormal([cs.n, cs.h, cs.h, cs.c]), [[0, 0], [p, p], [p, p], [0, 0]])) as tf.Tensor4D;
    const w = tf.randomNormal(wShape) as tf.Tensor4D;
    const conv = (x: tf.Tensor4D, f: tf.Tensor4D): tf.Tensor4D => (cs.depthwise
      ? tf.depthwiseConv2d(x, f, cs.s, 'valid')
      : tf.conv2d(x, f, cs.s, 'valid'));
    const y0 = conv(xp, w);
    const [, ho, wo] = y0.shape;
    const dy = tf.randomNormal(y0.shape) as tf.Tensor4D;
    y0.dispose();
    const macs = cs.n * ho * wo * cs.o * (cs.depthwise ? 1 : cs.c) * cs.k * cs.k;
    const grads = tf.grads((x: tf.Tensor, f: tf.Tensor) => conv(x as tf.Tensor4D, f as tf.Tensor4D));
    const fwd = timeIt(() => tf.tidy(() => syncAll(conv(xp, w))), budget);
    // tf.grads runs the forward pass itself (wasm kernels are synchronous), then both gradients.
    const fb = timeIt(() => tf.tidy(() => syncAll(grads([xp, w], dy))), budget);
    rows.push({ section: 'conv', item: `${convName(cs)} fwd`, seconds: fwd.s, unit: 'call', macs, reps: fwd.reps, cores: fwd.cores });
    rows.push({ section: 'conv', item: `${convName(cs)} fwd+bwd`, seconds: fb.s, unit: 'call', macs: 3 * macs, reps: fb.reps, cores: fb.cores });
    tf.dispose([xp, w, dy]);
  }
  return rows;
}

const convName = (cs: ConvCase): string => `b${cs.n} ${cs.name}`;

function wrn50Section(quick: boolean): Row[] {
  setInitSeed(0);
  const net = new ResNet('wide_resnet50_2', { upTo: 'layer3', featureLayers: ['layer2', 'layer3'] });
  net.eval();
  const size = 256;
  const rows: Row[] = [];
  // Counting MACs runs one forward pass: it doubles as the batch-1 warm-up.
  const macs = tf.tidy(() => totalMacs(countMacs(() => net.extract(tf.zeros([1, size, size, 3]) as tf.Tensor4D))));
  for (const b of quick ? [1] : [1, 8]) {
    const x = tf.randomUniform([b, size, size, 3]) as tf.Tensor4D;
    const run = (): void => tf.tidy(() => syncAll(net.extract(x)));
    const t = timeIt(run, b === 1 ? (quick ? 2 : 8) : 1, b === 1 ? 10 : 2, b !== 1);
    rows.push({ section: 'wrn50', item: `WRN50 stem..layer3 256² batch ${b}`, seconds: t.s / b, unit: 'image', macs, reps: t.reps, cores: t.cores });
    x.dispose();
  }
  net.dispose();
  return rows;
}

/**
 * Gradient checkpointing of a DRAEM part: the setting of the DRAEM profile the part stands for
 * (`gradientCheckpointing` in src/models/draem/config.ts), or ADBENCH_CHECKPOINTING=off|block|layer
 * for A/B runs.
 */
function draemCheckpointing(profile: DraemProfile): DraemCheckpointing {
  const env = process.env.ADBENCH_CHECKPOINTING;
  if (env === undefined || env === '') return DRAEM_PROFILES[profile].gradientCheckpointing;
  if (!(DRAEM_CHECKPOINTING as readonly string[]).includes(env)) throw new Error(`ADBENCH_CHECKPOINTING=${env}: expected ${DRAEM_CHECKPOINTING.join(', ')}`);
  return env as DraemCheckpointing;
}

/** One DRAEM training step through src/models/draem (networks, draemForward, draemLoss) with Adam. */
function draemStep(label: string, size: number, batch: number, rw: number, dw: number, reps: number, checkpointing: DraemCheckpointing): Row {
  setInitSeed(0);
  const nets = { reconstructive: new ReconstructiveSubNetwork(rw), discriminative: new DiscriminativeSubNetwork(dw) };
  nets.reconstructive.setCheckpointing(checkpointing).train();
  nets.discriminative.setCheckpointing(checkpointing).train();
  const opt = new Adam([...nets.reconstructive.trainableVariables(), ...nets.discriminative.trainableVariables()], { lr: 1e-4 });
  const aug = tf.randomUniform([batch, size, size, 3]) as tf.Tensor4D;
  const clean = tf.randomUniform([batch, size, size, 3]) as tf.Tensor4D;
  const mask = tf.tidy(() => tf.cast(tf.greater(tf.randomUniform([batch, size, size, 1]), 0.9), 'float32')) as tf.Tensor4D;
  const loss = (): tf.Scalar => tf.tidy(() => {
    const { reconstruction, probs } = draemForward(nets, aug);
    return draemLoss(reconstruction, clean, probs, mask).total;
  });
  // MACs of one forward pass (it also warms the kernels); a step counts 3x (forward + 2 gradients).
  const fwdMacs = tf.tidy(() => totalMacs(countMacs(() => draemForward(nets, aug))));
  const t = timeIt(() => { opt.minimize(loss); }, 0, reps, true);
  const params = nets.reconstructive.numParameters() + nets.discriminative.numParameters();
  tf.dispose([aug, clean, mask]);
  opt.dispose();
  nets.reconstructive.dispose();
  nets.discriminative.dispose();
  return {
    section: 'train', item: label, seconds: t.s, unit: 'step', macs: 3 * fwdMacs, reps: t.reps, cores: t.cores,
    note: `${(params / 1e6).toFixed(2)} M params; step MACs = 3 x forward ${(fwdMacs / 1e9).toFixed(1)} GMAC; gradient checkpointing ${checkpointing}`,
  };
}

/**
 * DRAEM steps: the cpu profile; 128², batch 4 at 1/4 of the official widths; and the issue's
 * reference, 128², batch 4, official widths (97.4 M parameters), which fits wasm32's 4 GB heap
 * only with gradient checkpointing. `profile`: whose gradientCheckpointing setting the part uses
 * (cpu: off; the others stand for the paper configuration: layer).
 */
export const DRAEM_STEPS = [
  { label: 'DRAEM step, cpu profile (64², batch 8, widths 16/8)', size: 64, batch: 8, rw: 16, dw: 8, heavy: false, reps: 3, profile: 'cpu' as DraemProfile },
  { label: 'DRAEM step 128², batch 4, widths 32/16', size: 128, batch: 4, rw: 32, dw: 16, heavy: false, reps: 2, profile: 'paper' as DraemProfile },
  { label: 'DRAEM step 128², batch 4, widths 128/64 (official)', size: 128, batch: 4, rw: 128, dw: 64, heavy: true, reps: 1, profile: 'paper' as DraemProfile },
  // Landed methods at their cpu profile, through their own loss code (no PyTorch counterpart yet).
  { label: 'RIAD step, cpu profile (64², batch 4, width 8, 3 masked passes)', size: 64, batch: 4, rw: 8, dw: 0, heavy: false, reps: 3, method: 'riad' as const },
  // TABLE6.md's PyTorch reference configuration: 128², 4 source images × 3 views (normal, CutPaste, Scar).
  { label: 'CutPaste step 128², 4 images × 3 views (ResNet-18 + 2-layer head, SGD)', size: 128, batch: 4, rw: 0, dw: 0, heavy: false, reps: 3, method: 'cutpaste' as const },
  { label: 'CutPaste step, cpu profile (64², 8 images × 3 views)', size: 64, batch: 8, rw: 0, dw: 0, heavy: false, reps: 3, method: 'cutpaste' as const },
  { label: 'GLASS step, cpu profile (128², batch 8, Tiny Darknet, 512-d, GAS 10, hypersphere)', size: 128, batch: 8, rw: 0, dw: 0, heavy: false, reps: 2, method: 'glass' as const },
  // TABLE6.md's PyTorch reference configuration: 4 samples per stream, 64/32-px patches (0.098 s/step).
  { label: 'Patch SVDD step (4 samples per stream, 64/32-px patches)', size: 64, batch: 4, rw: 0, dw: 0, heavy: false, reps: 5, method: 'patchsvdd' as const },
];

/** DRAEM_STEPS indices this run measures (--quick and the cpu backend skip the heavy ones). */
function draemParts(args: Args): number[] {
  if (args.trainParts) return args.trainParts;
  return DRAEM_STEPS.map((s, i) => ({ s, i }))
    .filter(({ s, i }) => (args.quick ? i === 0 || 'method' in s : !s.heavy || args.backend !== 'cpu'))
    .map(({ i }) => i);
}

/** One RIAD training step at its cpu profile: Riad.trainingLoss (3 masked U-Net passes, MSE + MSGMS + SSIM), Adam. */
function riadStep(label: string, reps: number): Row {
  setInitSeed(0);
  const c = RIAD_PROFILES.cpu;
  const riad = new Riad(c);
  riad.net.train();
  const opt = new Adam(riad.net.trainableVariables(), { lr: c.lr, weightDecay: c.weightDecay });
  const x = tf.randomUniform([c.batchSize, c.crop, c.crop, 3]) as tf.Tensor4D;
  // One fixed partition (k = 8): the cost of a step does not depend on which cells are hidden.
  const draw = { cellSize: 8, hidden: disjointMasks(c.crop, c.crop, 8, 3, new Rng(0)) };
  const fwdMacs = tf.tidy(() => totalMacs(countMacs(() => riad.trainingLoss(x, draw))));
  const t = timeIt(() => { opt.minimize(() => riad.trainingLoss(x, draw)); }, 0, reps, true);
  const params = riad.net.numParameters();
  x.dispose();
  opt.dispose();
  riad.dispose();
  return {
    section: 'train', item: label, seconds: t.s, unit: 'step', macs: 3 * fwdMacs, reps: t.reps, cores: t.cores,
    note: `${(params / 1e6).toFixed(2)} M params; step MACs = 3 x forward ${(fwdMacs / 1e9).toFixed(2)} GMAC; no PyTorch counterpart`,
  };
}

/**
 * One CutPaste training step (src/models/cutpaste: CutPaste.trainingLoss = ResNet-18 + head on all
 * views, mean cross-entropy) with SGD momentum 0.9 / wd 3e-5. The views are random images with
 * the 3-way label layout: a step costs the same whatever the pasted patches look like.
 */
function cutpasteStep(label: string, size: number, sources: number, reps: number): Row {
  setInitSeed(0);
  const c = { ...CUTPASTE_PROFILES.cpu, resize: size, crop: size, batchSize: sources, augmentParams: scarParamsFor(size) };
  const m = new CutPaste(c, new ResNet('resnet18', { upTo: 'layer4', featureLayers: ['layer3', 'layer4'] }));
  m.net.train();
  const opt = new SGD(m.net.trainableVariables(), { lr: c.lr, momentum: c.momentum, weightDecay: c.weightDecay });
  const n = 3 * sources;
  const images = tf.tidy(() => tf.randomUniform([n, size, size, 3], 0, 1, 'float32', 1).dataSync() as Float32Array);
  const batch: CutPasteBatch = { images, labels: [0, 1, 2].flatMap((k) => Array<number>(sources).fill(k)), n, h: size, w: size };
  const fwdMacs = tf.tidy(() => totalMacs(countMacs(() => m.trainingLoss(batch).loss)));
  const t = timeIt(() => { opt.minimize(() => m.trainingLoss(batch).loss); }, 0, reps, true);
  const params = m.net.numParameters();
  opt.dispose();
  m.dispose();
  return {
    section: 'train', item: label, seconds: t.s, unit: 'step', macs: 3 * fwdMacs, reps: t.reps, cores: t.cores,
    note: `${(params / 1e6).toFixed(2)} M params, ${n} views; step MACs = 3 x forward ${(fwdMacs / 1e9).toFixed(2)} GMAC`,
  };
}

/**
 * One GLASS training step at its cpu profile through src/models/glass (Glass.embed of the clean and
 * LAS batches, Glass.trainingLoss: GAS ascent rounds, BCE, hypersphere LAS push, OHEM + focal),
 * adaptor Adam + discriminator AdamW. Random-init Tiny Darknet (timing does not depend on weights),
 * random images and mask; the per-epoch centre is a fixed random tensor.
 */
function glassStep(label: string, reps: number): Row {
  const c = { ...GLASS_PROFILES.cpu, backbone: 'tiny_darknet', layers: [...TINY_DARKNET_DEFAULT_TAPS], distribution: 'hypersphere' as const };
  setInitSeed(0);
  const g = new Glass(c, getBackboneSpec('tiny_darknet').build({ featureLayers: c.layers }) as unknown as FeatureBackbone);
  g.discriminator.train();
  const n = c.batchSize;
  const clean = tf.randomUniform([n, c.crop, c.crop, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const las = tf.randomUniform([n, c.crop, c.crop, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
  const [gh, gw] = g.gridFor(c.crop, c.crop);
  const mask = new Float32Array(n * gh * gw).map((_, i) => (i % 7 === 0 ? 1 : 0));
  const center = tf.randomNormal([gh * gw, c.embedDim], 0, 0.1, 'float32', 3) as tf.Tensor2D;
  const a = new Adam(g.adaptor.trainableVariables(), { lr: c.adaptorLr, weightDecay: c.adaptorWeightDecay });
  const d = new AdamW(g.discriminator.trainableVariables(), { lr: c.discLr, weightDecay: c.discWeightDecay });
  const rng = new Rng(0);
  const grads = () => tf.variableGrads(() => g.trainingLoss(g.embed(clean), g.embed(las), mask, center, rng).total);
  const stepMacs = tf.tidy(() => totalMacs(countMacs(() => { const r = grads(); tf.dispose([r.value, r.grads]); })));
  const t = timeIt(() => {
    const { value, grads: gr } = grads();
    a.applyGradients(gr);
    d.applyGradients(gr);
    tf.dispose([value, gr]);
  }, 0, reps, true);
  const params = g.adaptor.numParameters() + g.discriminator.numParameters();
  tf.dispose([clean, las, center]);
  a.dispose();
  d.dispose();
  g.dispose();
  return {
    section: 'train', item: label, seconds: t.s, unit: 'step', macs: stepMacs, reps: t.reps, cores: t.cores,
    note: `${(params / 1e6).toFixed(2)} M trainable params; step MACs counted (forward, ${c.gasSteps} GAS gradients, backward); PyTorch: experiments/bench/torch_bench.py 'glass' (Tiny Darknet re-typed)`,
  };
}

/**
 * One Patch SVDD training step (src/models/patchsvdd: the four streams of `batch` samples each,
 * f_big on 4·batch 64² patches, f_small on 4·batch 32² patches, both classifiers, Adam over the
 * updated parameters), on one random 256² standardised image.
 */
function patchsvddStep(label: string, batch: number, reps: number): Row {
  setInitSeed(0);
  const c = { ...PATCHSVDD_PROFILES.paper, batchSize: batch };
  const m = new PatchSvdd(c);
  const img = new Float32Array(256 * 256 * 3);
  for (let i = 0; i < img.length; i++) img[i] = Math.sin(i * 0.37) * 0.2;
  const b = buildPatchBatch({ data: [img], height: 256, width: 256 }, new Array<number>(batch).fill(0), c.noiseSigma, new Rng(0));
  const opt = new Adam([m.nets.encoder, m.nets.cls64, m.nets.cls32].flatMap((n) => n.trainableVariables()), { lr: c.lr });
  const fwdMacs = tf.tidy(() => totalMacs(countMacs(() => m.trainingLoss(b))));
  const t = timeIt(() => { opt.minimize(() => m.trainingLoss(b)); }, 0, reps, true);
  opt.dispose();
  m.dispose();
  return {
    section: 'train', item: label, seconds: t.s, unit: 'step', macs: 3 * fwdMacs, reps: t.reps, cores: t.cores,
    note: `0.45 M params; step MACs = 3 x forward ${(fwdMacs / 1e9).toFixed(2)} GMAC; PyTorch: networks.py + main_train.py losses re-typed in torch_bench.py`,
  };
}


function trainSection(part: number): { rows: Row[]; notes: string[] } {
  const s = DRAEM_STEPS[part];
  if ('method' in s && s.method === 'riad') return { rows: [riadStep(s.label, s.reps)], notes: [] };
  if ('method' in s && s.method === 'cutpaste') {
    return { rows: [cutpasteStep(s.label, s.size, s.batch, s.reps)], notes: ['CutPaste step: src/models/cutpaste network and loss, random views, SGD; PyTorch: the same ResNet-18 + head re-typed in experiments/bench/torch_bench.py'] };
  }
  if ('method' in s && s.method === 'glass') return { rows: [glassStep(s.label, s.reps)], notes: [] };
  if ('method' in s && s.method === 'patchsvdd') return { rows: [patchsvddStep(s.label, s.batch, s.reps)], notes: [] };
  const notes = ['DRAEM step: src/models/draem networks and loss (L2 + SSIM + focal), random data, Adam; PyTorch: model_unet.py + loss.py re-typed in experiments/bench/torch_bench.py'];
  const profile = 'profile' in s ? s.profile : 'cpu';
  return { rows: [draemStep(s.label, s.size, s.batch, s.rw, s.dw, s.reps, draemCheckpointing(profile))], notes };
}

/** 200 images at the PatchCore cpu profile (128² crop, layer2 stride 8 -> 16x16 patches). */
export const CORESET_JOB = { images: 200, patches: 256, dim: 1024, projDim: 128, ratio: 0.01 };

function coresetSection(quick: boolean): { rows: Row[]; notes: string[] } {
  const images = quick ? 50 : CORESET_JOB.images;
  const rowsN = images * CORESET_JOB.patches;
  const count = Math.floor(rowsN * CORESET_JOB.ratio);
  // Gaussian-ish random features (sum of uniforms), deterministic.
  const data = new Float32Array(rowsN * CORESET_JOB.dim);
  let s = 12345;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const a = s / 4294967296;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = a + s / 4294967296 - 1;
  }
  const all: VectorSet = { data, rows: rowsN, dim: CORESET_JOB.dim };
  const tag = `${images} images: ${rowsN} x ${CORESET_JOB.dim} -> ${CORESET_JOB.projDim}`;
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  const projected = randomProjection(all, CORESET_JOB.projDim, new Rng(0));
  let wall = (performance.now() - t0) / 1000;
  const rows: Row[] = [
    { section: 'coreset', item: `random projection (${tag})`, seconds: wall, unit: 'call', macs: rowsN * CORESET_JOB.dim * CORESET_JOB.projDim, reps: 1, cores: cpuSeconds(c0) / wall },
  ];
  const notes: string[] = [];
  let first: Int32Array | null = null;
  for (const threads of [1, defaultCoresetThreads()].filter((t, i, a) => a.indexOf(t) === i)) {
    c0 = process.cpuUsage();
    t0 = performance.now();
    const selected = approximateGreedyCoreset(projected, { count, threads }, new Rng(1));
    wall = (performance.now() - t0) / 1000;
    rows.push({
      section: 'coreset', item: `greedy selection ${count} picks, ${threads} thread${threads > 1 ? 's' : ''} (${tag})`,
      seconds: wall, unit: 'call', macs: null, reps: 1, cores: cpuSeconds(c0) / wall,
      note: `${(wall / count * 1000).toFixed(1)} ms per pick`,
    });
    if (first && !first.every((v, i) => v === selected[i])) throw new Error(`coreset: ${threads} threads picked other indices than 1 thread`);
    if (first) notes.push(`${threads}-thread selection picked the same ${count} indices as 1 thread`);
    first = selected;
  }
  return { rows, notes };
}

// ------------------------------------------------------------------------------------- child

async function runChild(args: Args, section: Section): Promise<void> {
  const info = await setupRuntime(args.backend);
  const notes: string[] = [];
  if (!layerFusionEnabled()) notes.push('ADBENCH_LAYER_FUSION=0: layers unfused (plain op chains, src/nn/fusion.ts)');
  let rows: Row[] = [];
  if (section === 'conv') rows = convSection(args.quick);
  if (section === 'wrn50') rows = wrn50Section(args.quick);
  if (section === 'train' || section === 'coreset') {
    const r = section === 'train' ? trainSection(args.part) : coresetSection(args.quick);
    rows = r.rows;
    notes.push(...r.notes);
  }
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  const flags: Record<string, boolean | number> = {};
  if (info.active === 'wasm') {
    flags.simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
    flags.threads = await activeWasmThreads();
    const gemm = simdConvEngine();
    // our SIMD GEMM convolutions (src/nn/simd): threads, relaxed-SIMD FMA; 0 = XNNPACK's (ADBENCH_SIMD=off)
    flags.gemmThreads = gemm ? gemm.info.threads : 0;
    if (gemm) flags.gemmFma = gemm.info.relaxedSimd;
  }
  const out: ChildResult = {
    section,
    backend: info.active,
    flags,
    rows,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    wasmHeapMb: wasm?.HEAPU8 ? wasm.HEAPU8.buffer.byteLength / 2 ** 20 : null,
    notes: notes.filter(Boolean),
  };
  process.stdout.write(`\n@@BENCH@@${JSON.stringify(out)}\n`);
}

// ------------------------------------------------------------------------------------- parent

function torchAvailable(): string | null {
  if (!existsSync(PYTHON)) return null;
  try {
    return execFileSync(PYTHON, ['-c', 'import torch, torchvision; print(torch.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function torchJob(section: Section, part: number, args: Args): Record<string, unknown> | null {
  const base = { threads: args.torchThreads };
  const budget = args.quick ? 0.3 : 1.5;
  if (section === 'conv') {
    return { ...base, section, budget, cases: (args.quick ? CONV_CASES.slice(0, 3) : CONV_CASES).map((c) => ({ ...c, name: convName(c) })) };
  }
  if (section === 'wrn50') return { ...base, section, budget: args.quick ? 2 : 8, size: 256, batches: args.quick ? [1] : [1, 8] };
  if (section === 'train') {
    const s = DRAEM_STEPS[part];
    if ('method' in s && s.method === 'cutpaste') return { ...base, section: 'cutpaste', label: s.label, budget: 0, max_reps: s.reps, size: s.size, sources: s.batch, head_layers: 2, classes: 3 };
    if ('method' in s && s.method === 'glass') return { ...base, section: 'glass', label: s.label, budget: 0, max_reps: s.reps, size: s.size, batch: s.batch, dim: GLASS_PROFILES.cpu.embedDim, hidden: GLASS_PROFILES.cpu.discHidden, gasSteps: GLASS_PROFILES.cpu.gasSteps };
    if ('method' in s && s.method === 'patchsvdd') return { ...base, section: 'patchsvdd', label: s.label, budget: 0, max_reps: s.reps, batch: s.batch };
    if ('method' in s) return null;
    return { ...base, section: 'draem', label: s.label, budget: 0, max_reps: s.reps, size: s.size, batch: s.batch, recWidth: s.rw, discWidth: s.dw };
  }
  const images = args.quick ? 50 : CORESET_JOB.images;
  const rows = images * CORESET_JOB.patches;
  return { ...base, section, rows, dim: CORESET_JOB.dim, projDim: CORESET_JOB.projDim, count: Math.floor(rows * CORESET_JOB.ratio) };
}

/** Runs the PyTorch counterpart and writes its seconds into the matching rows. */
function runTorch(section: Section, part: number, args: Args, rows: Row[]): { peakRssMb: number; threads: number } {
  let peak = 0;
  let threads = 0;
  const one = torchJob(section, part, args);
  for (const job of one ? [one] : []) {
    const r = spawnSync(PYTHON, [TORCH_SCRIPT], { input: JSON.stringify(job), encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`torch_bench.py (${section}) failed: ${r.stderr.slice(-2000)}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop() as string);
    peak = Math.max(peak, res.peak_rss_mb);
    threads = res.threads;
    if (section === 'conv') {
      for (const c of res.cases) {
        const f = rows.find((x) => x.item === `${c.name} fwd`);
        const fb = rows.find((x) => x.item === `${c.name} fwd+bwd`);
        if (f) [f.torchSeconds, f.torchCores] = [c.fwd_s, c.fwd_cores];
        if (fb) [fb.torchSeconds, fb.torchCores] = [c.fwd_bwd_s, c.fwd_bwd_cores];
      }
    } else if (section === 'wrn50') {
      for (const run of res.runs) {
        const row = rows.find((x) => x.item.endsWith(`batch ${run.batch}`));
        if (row) [row.torchSeconds, row.torchCores] = [run.s_per_image, run.cores];
      }
    } else if (section === 'train') {
      const row = rows.find((x) => x.item === job.label);
      if (row) [row.torchSeconds, row.torchCores] = [res.s_per_step, res.cores];
      // Rows whose tfjs side failed get PyTorch's count (3 x forward conv/linear MACs).
      if (row && row.macs === null && res.step_macs) row.macs = res.step_macs;
    } else {
      const proj = rows.find((x) => x.item.startsWith('random projection'));
      if (proj) [proj.torchSeconds, proj.torchCores] = [res.projection_s, res.projection_cores];
      for (const row of rows.filter((x) => x.item.startsWith('greedy selection'))) [row.torchSeconds, row.torchCores] = [res.selection_s, res.selection_cores];
    }
  }
  return { peakRssMb: peak, threads };
}

/** Per row, the faster tfjs run and the faster PyTorch run of two repetitions. */
function mergeBest(a: ChildResult, b: ChildResult): ChildResult {
  const rows = a.rows.map((ra) => {
    const rb = b.rows.find((x) => x.item === ra.item);
    if (!rb) return ra;
    const out = { ...ra };
    if (Number.isNaN(out.seconds) || rb.seconds < out.seconds) Object.assign(out, { seconds: rb.seconds, cores: rb.cores, reps: rb.reps, load1: rb.load1 });
    if (rb.torchSeconds !== undefined && (out.torchSeconds === undefined || rb.torchSeconds < out.torchSeconds)) {
      Object.assign(out, { torchSeconds: rb.torchSeconds, torchCores: rb.torchCores });
    }
    return out;
  });
  return { ...a, rows, peakRssMb: Math.max(a.peakRssMb, b.peakRssMb), wasmHeapMb: a.wasmHeapMb === null ? b.wasmHeapMb : Math.max(a.wasmHeapMb, b.wasmHeapMb ?? 0) };
}

function runSectionChild(section: Section, part: number, args: Args): ChildResult {
  const passthrough = ['--backend', args.backend, '--part', String(part), ...(args.quick ? ['--quick'] : [])];
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--child', section, ...passthrough], {
    encoding: 'utf8', maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const marker = r.stdout?.lastIndexOf('@@BENCH@@') ?? -1;
  if (r.status === 0 && marker >= 0) return JSON.parse(r.stdout.slice(marker + 9).split('\n')[0]) as ChildResult;
  // A failed part (e.g. the wasm heap exhausted) becomes a row saying so; the run goes on.
  const why = (r.stderr ?? '').split('\n').find((l) => /^\w*Error\b/.test(l))?.trim().slice(0, 160) ?? `exit ${r.status}`;
  const label = section === 'train' ? DRAEM_STEPS[part].label : section;
  return {
    section, backend: args.backend, flags: {}, peakRssMb: NaN, wasmHeapMb: null, notes: [],
    rows: [{ section, item: label, seconds: NaN, unit: section === 'train' ? 'step' : 'call', macs: null, reps: 0, note: `failed: ${why}` }],
  };
}

const fmtS = (s: number | undefined): string => (s === undefined ? '' : Number.isNaN(s) ? 'failed' : s >= 100 ? s.toFixed(0) : s >= 1 ? s.toFixed(2) : s >= 0.01 ? s.toFixed(3) : s.toFixed(4));
const fmtG = (macs: number | null, s: number | undefined): string => (macs === null || s === undefined ? '' : (macs / s / 1e9).toFixed(2));

const fmtC = (c: number | undefined): string => (c === undefined ? '' : c.toFixed(2));

function table(rows: Row[], withTorch: boolean): string {
  const head = withTorch
    ? '| section | item | tfjs s/unit | tfjs GMAC/s | tfjs cores | PyTorch s/unit | PyTorch GMAC/s | PyTorch cores | tfjs/PyTorch | load1 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|'
    : '| section | item | tfjs s/unit | tfjs GMAC/s | tfjs cores | load1 |\n|---|---|---:|---:|---:|---:|';
  const lines = rows.map((r) => {
    const base = `| ${r.section} | ${r.item} (per ${r.unit}) | ${fmtS(r.seconds)} | ${fmtG(r.macs, r.seconds)} | ${fmtC(r.cores)} |`;
    if (!withTorch) return `${base} ${r.load1?.toFixed(1)} |`;
    const ratio = r.torchSeconds !== undefined && !Number.isNaN(r.seconds) ? (r.torchSeconds / r.seconds).toFixed(2) : '';
    return `${base} ${fmtS(r.torchSeconds)} | ${fmtG(r.macs, r.torchSeconds)} | ${fmtC(r.torchCores)} | ${ratio} | ${r.load1?.toFixed(1)} |`;
  });
  return [head, ...lines].join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    await runChild(args, args.child);
    return;
  }
  const torchVersion = args.torch ? torchAvailable() : null;
  if (args.torch && !torchVersion) console.log(`[bench] --torch: ${PYTHON} has no torch/torchvision; tfjs side only`);
  const machine = `${cpus()[0]?.model ?? 'cpu'} x ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, tfjs ${tf.version.tfjs}`;
  console.log(`[bench] ${new Date().toISOString()} ${machine}; backend ${args.backend}${torchVersion ? `; PyTorch ${torchVersion} x ${args.torchThreads} threads` : ''}`);
  const all: Row[] = [];
  const sectionInfo: Record<string, unknown>[] = [];
  const notesSeen = new Set<string>();
  for (const section of args.sections) {
    for (const part of section === 'train' ? draemParts(args) : [0]) {
      let res: ChildResult | null = null;
      let torchInfo: { peakRssMb: number; threads: number } | null = null;
      let torchPeak = 0;
      // --repeat N: tfjs and PyTorch alternate N times; each row keeps its fastest run per side
      // (on a shared machine the minimum is the least disturbed measurement).
      for (let rep = 0; rep < args.repeat; rep++) {
        const load1 = loadavg()[0];
        console.log(`[bench] ${section}${section === 'train' ? ` ${part}` : ''}${args.repeat > 1 ? ` run ${rep + 1}/${args.repeat}` : ''} (load average ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
        const cur = runSectionChild(section, part, args);
        for (const r of cur.rows) r.load1 = load1;
        if (torchVersion && torchJob(section, part, args)) {
          const tLoad = loadavg()[0];
          const ti = runTorch(section, part, args, cur.rows);
          torchPeak = Math.max(torchPeak, ti.peakRssMb);
          torchInfo = { peakRssMb: torchPeak, threads: ti.threads };
          for (const r of cur.rows) if (r.torchSeconds !== undefined) r.load1 = (load1 + tLoad) / 2;
        }
        res = res === null ? cur : mergeBest(res, cur);
      }
      if (res === null) continue;
      for (const r of res.rows) {
        const g = (s: number | undefined, c: number | undefined): string => `${r.macs !== null ? `${fmtG(r.macs, s)} GMAC/s, ` : ''}${fmtC(c)} cores`;
        const ratio = r.torchSeconds !== undefined && !Number.isNaN(r.seconds) ? `  PyTorch ${fmtS(r.torchSeconds)} s (${g(r.torchSeconds, r.torchCores)}), ratio ${(r.torchSeconds / r.seconds).toFixed(2)}` : '';
        if (Number.isNaN(r.seconds) && r.torchSeconds !== undefined) console.log(`  ${r.item}: tfjs failed; PyTorch ${fmtS(r.torchSeconds)} s (${g(r.torchSeconds, r.torchCores)})`);
        console.log(`  ${r.item}: ${fmtS(r.seconds)} s/${r.unit} (${g(r.seconds, r.cores)})${ratio}${r.note ? `  [${r.note}]` : ''}`);
      }
      const mem = `peak RSS ${res.peakRssMb.toFixed(0)} MB${res.wasmHeapMb !== null ? `, wasm heap ${res.wasmHeapMb.toFixed(0)} MB` : ''}${torchInfo ? `; PyTorch peak RSS ${torchInfo.peakRssMb.toFixed(0)} MB` : ''}`;
      console.log(`  memory: ${mem}; backend ${res.backend} ${JSON.stringify(res.flags)}`);
      for (const n of res.notes) if (!notesSeen.has(n)) console.log(`  note: ${n}`);
      for (const n of res.notes) notesSeen.add(n);
      for (const r of res.rows) r.memory = mem;
      all.push(...res.rows);
      sectionInfo.push({ section, part, backend: res.backend, flags: res.flags, peakRssMb: res.peakRssMb, wasmHeapMb: res.wasmHeapMb, torchPeakRssMb: torchInfo?.peakRssMb, notes: res.notes });
    }
  }
  console.log(`\n[bench] done, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  console.log(table(all, torchVersion !== null));
  if (args.json) {
    writeFileSync(args.json, JSON.stringify({ date: new Date().toISOString(), machine, backend: args.backend, torch: torchVersion, torchThreads: args.torchThreads, rows: all, sections: sectionInfo }, null, 1));
    console.log(`[bench] wrote ${args.json}`);
  }
}

// Run only when executed directly (scratch probes import the sections).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
