import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWriteFile } from './atomicWrite.js';
import { TrainingError } from '../errors.js';
import { Module } from '../nn/module.js';
import { Rng } from '../util/rng.js';
import { CheckpointDir, CheckpointMeta, JsonValue, readCheckpoint, validateTensorSet } from './checkpoint.js';
import { BatchQueue, disposeBatchTensors } from './batchQueue.js';
import { clipByGlobalNorm, globalNorm } from './clipGradients.js';
import type { NamedGrads, Optimizer, OptimizerState } from './optimizers/optimizer.js';
import { Progress, ProgressMode } from './progress.js';
import type { Schedule } from './schedules.js';

/** Where a batch sits in the run (what `prepareBatch` learns). */
export interface BatchContext {
  /** Global 0-based step (= batchIndex). */
  step: number;
  /** 0-based epoch of this step. */
  epoch: number;
  /** 0-based index of the batch within its epoch. */
  batchInEpoch: number;
  stepsPerEpoch: number;
  totalSteps: number;
}

/** What a step function learns about its position in the run. */
export interface StepContext extends BatchContext {
  /** Learning rate of each optimizer for this step. */
  lr: number[];
}

/**
 * Returns the scalar loss of one step. Runs INSIDE tf.variableGrads (and a tidy): every tensor it
 * creates is freed after the step. `batch` is what `prepareBatch` made for this step (undefined
 * without that hook). Randomness drawn here must come from `rng` (or seeds from `rng.tfSeed()`),
 * the trainer's checkpointed stream, for resume to be bit-exact; randomness of the DATA belongs in
 * `prepareBatch`.
 */
export type StepFn<B = undefined> = (batchIndex: number, rng: Rng, ctx: StepContext, batch: B) => tf.Scalar;

/**
 * Builds the batch of step `step`, asynchronously and outside the differentiable step (it may
 * await tensor reads, files, the augmentation registry). `rng` is a fresh stream that is a pure
 * function of (batchSeed, step) — `new Rng(\`${batchSeed}/step-${step}\`)` — so prefetching and
 * resuming never change a batch. It must not read the model (it runs while earlier steps train).
 * Return typed arrays (preferred: tensors are made inside the step) or tensors, which the trainer
 * disposes after the step (see `disposeBatch`).
 */
export type PrepareBatchFn<B> = (step: number, rng: Rng, ctx: BatchContext) => B | Promise<B>;

/** What the per-epoch hooks get. */
export interface EpochContext {
  /** Completed steps when the hook runs (onEpochStart of a run resumed mid-epoch: the resume step). */
  step: number;
  /** Print a line without garbling the progress bar. */
  log(line: string): void;
}

/**
 * Duck type of src/energy's CostMeter (a CostMeter is assignable): phases are started/stopped
 * around training and validation; a returned promise (e.g. the phase's costs) is awaited and ignored.
 */
export interface CostMeterHooks {
  start(phase: string): void;
  stop(phase: string): unknown;
}

export interface StepInfo {
  step: number;
  epoch: number;
  batchInEpoch: number;
  loss: number;
  /** Global gradient norm before clipping (null when neither clip nor nanGuard asked for it). */
  gradNorm: number | null;
  lr: number[];
}

export interface ValidateContext {
  /** Completed steps. */
  step: number;
  /** Write a named checkpoint (e.g. 'best') of the current state into the run's checkpoint folder; returns its path. */
  saveCheckpoint(tag: string): string;
  /** Print a line without garbling the progress bar. */
  log(line: string): void;
}

/** Return `{ stop: true }` to end training after this epoch (early stopping). */
export type ValidateResult = void | { stop?: boolean };

/** Caller state (JSON) carried in checkpoints and restored on resume, e.g. early-stopping counters. */
export interface ExtraState {
  save(): JsonValue;
  load(value: JsonValue): void;
}

export interface TrainOptions<B = undefined> {
  /** Networks whose parameters AND buffers are checkpointed; names prefix the checkpoint keys. */
  modules: Module | Readonly<Record<string, Module>>;
  /** One or several optimizers (disjoint parameter sets); all step on the same loss. */
  optimizers: Optimizer | readonly Optimizer[];
  /** One schedule for all optimizers, or one per optimizer (undefined keeps its lr constant). */
  schedule?: Schedule | readonly (Schedule | undefined)[];
  /**
   * Total steps; or give epochs × stepsPerEpoch. With steps but no stepsPerEpoch the whole run is
   * one "epoch" (onValidate once at the end) and a resumed run may raise `steps`.
   */
  steps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  stepFn: StepFn<B>;
  /**
   * Asynchronous batch builder (see PrepareBatchFn); its result is the step function's `batch`.
   * Batch `s` is prepared while step s−1 computes, up to `prefetch` batches ahead.
   */
  prepareBatch?: PrepareBatchFn<B>;
  /** Batches prepared ahead of the running step (default 1; 0 = prepare each just before its step). */
  prefetch?: number;
  /** Root of the per-step batch streams (default `${seed}/batch`, seed = rng.seed or `seed`). */
  batchSeed?: string;
  /** Frees a batch after its step (default: dispose every tf.Tensor found in it). */
  disposeBatch?: (batch: B) => void;
  /** RNG handed to stepFn; its state is checkpointed. Default new Rng(seed ?? 0). */
  rng?: Rng;
  seed?: number | string;
  /** Run folder; checkpoints go to `<runDir>/checkpoints` (or `<runDir>/checkpoints/<stage>`). Without it nothing is saved. */
  runDir?: string;
  /**
   * Training stage of a multi-stage method (e.g. DDAD: 'denoiser', then 'extractor'): checkpoints
   * go to `<runDir>/checkpoints/<stage>`, so each stage resumes from its own. A stage that finished
   * (all steps, or stopped early) leaves a `finished.json` there; resuming it restores its final
   * checkpoint and runs no step (`TrainResult.alreadyFinished`).
   */
  stage?: string;
  /** Save every this many steps (default: each epoch when epochs are given, else only at the end; 0 = only at the end). */
  checkpointEvery?: number;
  /** Step checkpoints kept (default 3). */
  keepLast?: number;
  /** true: continue from `<runDir>/checkpoints/latest.json` (fresh start if none); string: that checkpoint file. */
  resume?: boolean | string;
  /** Allow a fresh (non-resume) run to delete existing checkpoints in runDir. */
  overwrite?: boolean;
  /** Stop on a non-finite loss or gradient norm, before the update is applied (default true). */
  nanGuard?: boolean;
  /** Clip gradients to this global L2 norm (torch clip_grad_norm_). */
  clip?: number;
  /**
   * Called before the first step of every epoch this call runs (also the epoch a resumed run
   * continues mid-way: then `ctx.step` > epoch × stepsPerEpoch).
   */
  onEpochStart?: (epoch: number, ctx: EpochContext) => void | Promise<void>;
  /**
   * Called after the last step of every epoch (after that epoch's checkpoint is written and before
   * onValidate), e.g. for epoch logs or per-epoch state. State it changes is not in that checkpoint.
   */
  onEpochEnd?: (epoch: number, ctx: EpochContext) => void | Promise<void>;
  /** Called after every `validateEvery`-th epoch with the 0-based epoch just finished. Must not use the training rng. */
  onValidate?: (epoch: number, ctx: ValidateContext) => ValidateResult | Promise<ValidateResult>;
  validateEvery?: number;
  onStep?: (info: StepInfo) => void;
  extraState?: ExtraState;
  /** Run configuration, hashed into checkpoints; resume refuses a checkpoint with another hash. */
  config?: JsonValue;
  meter?: CostMeterHooks;
  /** Meter phase names (default 'train' / 'validate'). */
  meterPhases?: { train?: string; validate?: string };
  log?: (line: string) => void;
  progress?: ProgressMode;
  /** Lines-mode progress interval in steps. */
  logEvery?: number;
  label?: string;
}

export interface TrainResult {
  /** Step the run (re)started from. */
  startStep: number;
  /** Completed steps at the end. */
  step: number;
  totalSteps: number;
  /** Loss of each step run by this call, in order. */
  losses: number[];
  lastLoss: number | null;
  /** Checkpoint resumed from, if any. */
  resumedFrom: string | null;
  /** Newest checkpoint written or resumed from (null if none). */
  checkpoint: string | null;
  stoppedEarly: boolean;
  /** The stage had finished before this call (resume): its final checkpoint was restored, no step ran. */
  alreadyFinished: boolean;
  /** The RNG state after training (a restored one when resumed). */
  rng: Rng;
}

/** sha256 of a canonical (key-sorted) JSON rendering. */
export function configHash(config: JsonValue): string {
  const canon = (v: JsonValue): string => {
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`;
  };
  return createHash('sha256').update(canon(config)).digest('hex');
}

function namedModules(m: TrainOptions['modules']): [string, Module][] {
  return m instanceof Module ? [['model', m]] : Object.entries(m);
}

/** Checkpoint tensor map: `module.<name>.<param>` and `optim.<k>.<key>`. Clones; caller disposes. */
function collectState(modules: [string, Module][], optimizers: readonly Optimizer[]): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, m] of modules) for (const [k, t] of m.stateDict()) out.set(`module.${name}.${k}`, t);
  optimizers.forEach((o, i) => {
    for (const [k, t] of o.state()) out.set(`optim.${i}.${k}`, t);
  });
  return out;
}

/**
 * The training loop shared by all trained methods. Per step: lr from the schedule, loss and
 * gradients of all trainable parameters of all optimizers (stepFn inside tf.variableGrads),
 * optional global-norm clipping, NaN/Inf guard (before any update), each optimizer's update.
 * Checkpoints hold weights, buffers, optimizer slots, step, RNG state, config hash, so a resumed
 * run continues bit-for-bit on deterministic backends.
 *
 * ```ts
 * const rec = new Net();
 * const opt = new Adam(rec.trainableVariables(), { lr: 1e-4 });
 * await train({
 *   modules: { rec }, optimizers: opt,
 *   schedule: draemSchedule({ epochs: 700, stepsPerEpoch: 30 }),
 *   epochs: 700, stepsPerEpoch: 30, seed: 1, runDir: 'runs/draem-bottle', resume: true,
 *   // async, outside the gradient scope, prefetched; rng is a pure function of (seed, step)
 *   prepareBatch: async (step, rng) => synthesiseBatch(images, rng), // -> { x: Float32Array, y: Float32Array }
 *   stepFn: (i, rng, ctx, b) => lossOf(rec.call(tf.tensor4d(b.x, shape)), tf.tensor4d(b.y, shape)),
 *   onEpochEnd: (epoch, ctx) => ctx.log(`epoch ${epoch + 1} done`),
 * });
 * ```
 */
export async function train<B = undefined>(opts: TrainOptions<B>): Promise<TrainResult> {
  const modules = namedModules(opts.modules);
  const optimizers: readonly Optimizer[] = Array.isArray(opts.optimizers) ? opts.optimizers : [opts.optimizers as Optimizer];
  if (optimizers.length === 0) throw new TrainingError('train: no optimizer given');
  const totalSteps = opts.steps ?? (opts.epochs !== undefined && opts.stepsPerEpoch !== undefined ? opts.epochs * opts.stepsPerEpoch : NaN);
  if (!Number.isInteger(totalSteps) || totalSteps < 0) {
    throw new TrainingError('train: give steps, or epochs and stepsPerEpoch, as non-negative integers');
  }
  const stepsPerEpoch = opts.stepsPerEpoch ?? Math.max(1, totalSteps);
  if (!Number.isInteger(stepsPerEpoch) || stepsPerEpoch < 1) throw new TrainingError(`train: stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
  const schedules: (Schedule | undefined)[] = optimizers.map((_, i) =>
    Array.isArray(opts.schedule) ? (opts.schedule as (Schedule | undefined)[])[i] : (opts.schedule as Schedule | undefined),
  );
  const nanGuard = opts.nanGuard ?? true;
  const log = opts.log ?? ((l: string) => void process.stderr.write(`${l}\n`));
  const hash = opts.config !== undefined ? configHash(opts.config) : null;
  const checkpointEvery = opts.checkpointEvery ?? (opts.epochs !== undefined ? stepsPerEpoch : 0);
  if (opts.stage !== undefined && !/^[A-Za-z0-9_.-]+$/.test(opts.stage)) {
    throw new TrainingError(`train: stage name '${opts.stage}' must be letters, digits, '_', '-' or '.' (it names a checkpoint folder)`);
  }
  const ckdir = opts.runDir !== undefined
    ? new CheckpointDir(join(opts.runDir, 'checkpoints', ...(opts.stage !== undefined ? [opts.stage] : [])), { keepLast: opts.keepLast })
    : null;
  const prefetch = opts.prefetch ?? 1;
  if (!Number.isInteger(prefetch) || prefetch < 0) throw new TrainingError(`train: prefetch must be a non-negative integer, got ${prefetch}`);
  const phaseTrain = opts.meterPhases?.train ?? 'train';
  const phaseVal = opts.meterPhases?.validate ?? 'validate';

  // Every parameter must belong to at most one optimizer.
  const owner = new Map<string, number>();
  optimizers.forEach((o, k) =>
    o.params.forEach((p) => {
      if (owner.has(p.name)) throw new TrainingError(`train: parameter ${p.name} belongs to optimizers ${owner.get(p.name)} and ${k}`);
      owner.set(p.name, k);
    }),
  );

  let rng = opts.rng ?? new Rng(opts.seed ?? 0);
  const batchSeed = opts.batchSeed ?? `${rng.seed}/batch`;
  let startStep = 0;
  let resumedFrom: string | null = null;
  let lastCheckpoint: string | null = null;
  const finished = ckdir ? readFinished(ckdir) : null;

  // ------------------------------------------------------------------ resume / fresh start
  if (opts.resume) {
    const path = typeof opts.resume === 'string' ? opts.resume : (ckdir?.latest() ?? null);
    if (typeof opts.resume !== 'string' && !ckdir) throw new TrainingError('train: resume needs runDir (or a checkpoint path)');
    if (typeof opts.resume !== 'string' && ckdir && finished && (finished.stoppedEarly || finished.totalSteps === totalSteps) && path !== null) {
      // A finished stage is not re-run: its final weights (and optimizer/RNG state) come back.
      const restored = restore(path, modules, optimizers, { hash, stepsPerEpoch: opts.stepsPerEpoch, extra: opts.extraState });
      log(`[train] ${opts.stage !== undefined ? `stage '${opts.stage}'` : 'training'} already finished at step ${restored.step} (${ckdir.dir}); restored, not re-run`);
      return {
        startStep: restored.step, step: restored.step, totalSteps, losses: [], lastLoss: null, resumedFrom: path, checkpoint: path,
        stoppedEarly: finished.stoppedEarly, alreadyFinished: true, rng: restored.rng ?? rng,
      };
    }
    if (path === null) {
      log(`[train] no checkpoint in ${ckdir?.dir}; starting from step 0`);
    } else {
      // Epoch length is checked only when the caller counts in epochs (steps-only runs may be extended).
      const restored = restore(path, modules, optimizers, { hash, stepsPerEpoch: opts.stepsPerEpoch, extra: opts.extraState });
      rng = restored.rng ?? rng;
      startStep = restored.step;
      resumedFrom = path;
      lastCheckpoint = path;
      log(`[train] resumed from ${path} at step ${startStep}/${totalSteps}`);
    }
  } else if (ckdir && ckdir.list().length > 0) {
    if (!opts.overwrite) {
      throw new TrainingError(
        `run folder ${opts.runDir} already has checkpoints (${ckdir.dir}); pass --resume to continue that run, choose another run folder, or allow overwriting`,
      );
    }
    ckdir.clear();
  }
  if (ckdir) clearFinished(ckdir);

  const meta = (step: number): CheckpointMeta => ({
    step,
    epoch: Math.floor(step / stepsPerEpoch),
    stepsPerEpoch,
    totalSteps,
    rng: { seed: rng.seed, state: rng.state() },
    optimizers: optimizers.map((o) => ({ kind: o.kind, lr: o.lr, hyperparameters: o.hyperparameters() })),
    configHash: hash,
    ...(opts.extraState ? { extra: opts.extraState.save() } : {}),
  });
  const save = (step: number, tag?: string): string => {
    if (!ckdir) throw new TrainingError('train: saving a checkpoint needs runDir');
    if (nanGuard) assertFiniteWeights(modules, step, lastCheckpoint);
    const tensors = collectState(modules, optimizers);
    try {
      return tag ? ckdir.saveNamed(tag, tensors, meta(step)) : ckdir.save(tensors, meta(step));
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  };

  const progress = new Progress({
    total: totalSteps, start: startStep, label: opts.label ?? 'train', mode: opts.progress, log, everySteps: opts.logEvery,
  });
  const losses: number[] = [];
  let stoppedEarly = false;
  let step = startStep;
  let meterRunning: string | null = null;
  const meterStart = (p: string) => {
    if (opts.meter) {
      opts.meter.start(p);
      meterRunning = p;
    }
  };
  const meterStop = async () => {
    if (opts.meter && meterRunning !== null) {
      const p = meterRunning;
      meterRunning = null;
      await opts.meter.stop(p);
    }
  };

  const batchCtx = (s: number): BatchContext => ({ step: s, epoch: Math.floor(s / stepsPerEpoch), batchInEpoch: s % stepsPerEpoch, stepsPerEpoch, totalSteps });
  const prepareBatch = opts.prepareBatch;
  const disposeBatch = opts.disposeBatch ?? ((b: B) => disposeBatchTensors(b));
  const queue = prepareBatch
    ? new BatchQueue<B>((s) => prepareBatch(s, new Rng(`${batchSeed}/step-${s}`), batchCtx(s)), totalSteps, prefetch, disposeBatch)
    : null;
  const epochCtx = (): EpochContext => ({ step, log: (l: string) => progress.message(l) });

  meterStart(phaseTrain);
  try {
    for (; step < totalSteps; ) {
      const epoch = Math.floor(step / stepsPerEpoch);
      const batchInEpoch = step % stepsPerEpoch;
      if (opts.onEpochStart && (batchInEpoch === 0 || step === startStep)) await opts.onEpochStart(epoch, epochCtx());
      const batch = queue ? await queue.take(step) : (undefined as B);
      const lr = optimizers.map((o, k) => {
        const s = schedules[k];
        if (s) o.lr = s(step);
        return o.lr;
      });
      const ctx: StepContext = { ...batchCtx(step), lr };
      let result: { loss: number; gradNorm: number | null };
      try {
        result = await runStep(opts.stepFn, ctx, rng, batch, optimizers, {
          clip: opts.clip, wantNorm: nanGuard || opts.clip !== undefined, nanGuard, lastCheckpoint, totalSteps,
        }).catch((e: unknown) => {
          throw wasmHeapExhausted(e, ctx.step + 1, lastCheckpoint) ?? e;
        });
      } finally {
        if (queue) disposeBatch(batch);
      }
      const { loss, gradNorm } = result;
      step += 1;
      losses.push(loss);
      opts.onStep?.({ step: ctx.step, epoch, batchInEpoch, loss, gradNorm, lr });
      progress.update(step, { epoch: epoch + 1, loss, lr: lr[0] });

      const endOfEpoch = step % stepsPerEpoch === 0;
      if (ckdir && ((checkpointEvery > 0 && step % checkpointEvery === 0) || step === totalSteps)) {
        lastCheckpoint = save(step);
      }
      if (endOfEpoch && opts.onEpochEnd) await opts.onEpochEnd(epoch, epochCtx());
      if (endOfEpoch && opts.onValidate && (epoch + 1) % (opts.validateEvery ?? 1) === 0) {
        await meterStop();
        meterStart(phaseVal);
        let res: ValidateResult;
        try {
          res = await opts.onValidate(epoch, {
            step,
            saveCheckpoint: (tag: string) => save(step, tag),
            log: (l: string) => progress.message(l),
          });
        } finally {
          await meterStop();
        }
        if (res && res.stop) {
          stoppedEarly = true;
          if (ckdir && lastCheckpoint !== null && !lastCheckpoint.endsWith(CheckpointDir.fileName(step))) lastCheckpoint = save(step);
          else if (ckdir && lastCheckpoint === null) lastCheckpoint = save(step);
          progress.message(`[train] early stop after epoch ${epoch + 1} (step ${step})`);
          break;
        }
        meterStart(phaseTrain);
      }
    }
  } finally {
    await queue?.drain();
    progress.end();
    await meterStop();
  }
  if (ckdir && lastCheckpoint !== null && (step === totalSteps || stoppedEarly)) writeFinished(ckdir, { step, totalSteps, stoppedEarly });
  return {
    startStep, step, totalSteps, losses, lastLoss: losses.length ? losses[losses.length - 1] : null,
    resumedFrom, checkpoint: lastCheckpoint, stoppedEarly, alreadyFinished: false, rng,
  };
}

/** `finished.json` beside a stage's checkpoints: the stage ran to its end (or stopped early). */
interface FinishedMarker {
  step: number;
  totalSteps: number;
  stoppedEarly: boolean;
}

const FINISHED_FILE = 'finished.json';

function readFinished(ckdir: CheckpointDir): FinishedMarker | null {
  const path = join(ckdir.dir, FINISHED_FILE);
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as FinishedMarker;
  } catch (e) {
    throw new TrainingError(`${path} is unreadable (${(e as Error).message}); delete it to resume from the newest checkpoint`);
  }
}

function writeFinished(ckdir: CheckpointDir, m: FinishedMarker): void {
  atomicWriteFile(join(ckdir.dir, FINISHED_FILE), `${JSON.stringify(m)}\n`);
}

function clearFinished(ckdir: CheckpointDir): void {
  rmSync(join(ckdir.dir, FINISHED_FILE), { force: true });
}

/**
 * tfjs-wasm reports an exhausted heap (wasm32: 4 GB) not as an out-of-memory error but as a
 * WebAssembly RuntimeError from inside its allocator ("Aborted()" or "memory access out of
 * bounds"); the backend is unusable afterwards. This turns it into a TrainingError that says so
 * and what to change. Null for any other error.
 */
export function wasmHeapExhausted(e: unknown, step: number, lastCheckpoint: string | null, backend = tf.getBackend()): TrainingError | null {
  if (backend !== 'wasm' || !(e instanceof WebAssembly.RuntimeError) || !/Aborted\(|memory access out of bounds/.test(e.message)) return null;
  return new TrainingError(
    `training step ${step}: the wasm backend ran out of memory (its heap is capped at 4 GB; tfjs-wasm reports this as "${e.message.split('.')[0]}"), `
    + 'and it cannot be used again in this process. Use a smaller batch or input size (--set batchSize=..., --profile cpu), '
    + "gradient checkpointing where the method has it (--set gradientCheckpointing=layer), or the tfjs-node backend (--backend tensorflow)"
    + (lastCheckpoint ? `; --resume continues from ${lastCheckpoint}` : '') + '.',
  );
}

async function runStep<B>(
  stepFn: StepFn<B>,
  ctx: StepContext,
  rng: Rng,
  batch: B,
  optimizers: readonly Optimizer[],
  o: { clip?: number; wantNorm: boolean; nanGuard: boolean; lastCheckpoint: string | null; totalSteps: number },
): Promise<{ loss: number; gradNorm: number | null }> {
  const vars = optimizers.flatMap((opt) => opt.params.filter((p) => p.trainable));
  if (vars.length === 0) throw new TrainingError('train: no trainable parameters');
  const { value, grads, norm } = tf.tidy(() => {
    const { value: v, grads: g } = tf.variableGrads(() => {
      const l = stepFn(ctx.step, rng, ctx, batch);
      if (!(l instanceof tf.Tensor) || l.rank !== 0) throw new TrainingError(`train: stepFn must return a scalar loss tensor (step ${ctx.step + 1})`);
      return l;
    }, vars);
    let gOut: tf.NamedTensorMap = Object.fromEntries(Object.entries(g).filter((e): e is [string, tf.Tensor] => e[1] != null));
    let n: tf.Scalar | null = null;
    if (o.clip !== undefined) ({ grads: gOut, norm: n } = clipByGlobalNorm(gOut, o.clip));
    else if (o.wantNorm) n = globalNorm(gOut);
    return { value: v, grads: gOut, norm: n ?? undefined };
  });
  const dispose = () => {
    value.dispose();
    norm?.dispose();
    tf.dispose(Object.values(grads));
  };
  try {
    const read = norm ? tf.tidy(() => tf.stack([value, norm])) : value;
    const vals = await read.data();
    if (read !== value) read.dispose();
    const loss = vals[0];
    const gradNorm = norm ? vals[1] : null;
    if (o.nanGuard && (!Number.isFinite(loss) || (gradNorm !== null && !Number.isFinite(gradNorm)))) {
      const what = !Number.isFinite(loss) ? `loss ${loss}` : `gradient norm ${gradNorm} (loss ${loss})`;
      throw new TrainingError(
        `training diverged: non-finite ${what} at step ${ctx.step + 1}/${o.totalSteps} (epoch ${ctx.epoch + 1}, batch ${ctx.batchInEpoch + 1}); ` +
          `the update was not applied and no checkpoint was written. ` +
          (o.lastCheckpoint ? `The last good checkpoint ${o.lastCheckpoint} is kept; ` : 'No checkpoint had been written yet; ') +
          'lower the learning rate or enable gradient clipping, then resume.',
      );
    }
    const g: NamedGrads = grads;
    for (const opt of optimizers) opt.applyGradients(g);
    return { loss, gradNorm };
  } finally {
    dispose();
  }
}

function assertFiniteWeights(modules: [string, Module][], step: number, last: string | null): void {
  const bad: string[] = [];
  for (const [name, m] of modules) {
    for (const [k, e] of m.namedEntries()) {
      if (e.variable.dtype !== 'float32') continue;
      const ok = tf.tidy(() => tf.all(tf.isFinite(e.variable)).dataSync()[0]);
      if (!ok) bad.push(`${name}.${k}`);
    }
  }
  if (bad.length > 0) {
    throw new TrainingError(
      `training diverged: non-finite weights after step ${step} (${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', ...' : ''}); ` +
        `checkpoint not written${last ? `; the last good checkpoint ${last} is kept` : ''}.`,
    );
  }
}

interface Restored {
  step: number;
  rng: Rng | null;
}

/** Load weights, buffers, optimizer slots, RNG and extra state from a checkpoint; TrainingError naming the file on any mismatch. */
export function restore(
  path: string,
  modules: [string, Module][],
  optimizers: readonly Optimizer[],
  o: { hash: string | null; stepsPerEpoch?: number; extra?: ExtraState },
): Restored {
  const { header, tensors } = readCheckpoint(path);
  try {
    if (o.hash !== null && header.configHash !== null && header.configHash !== o.hash) {
      throw new TrainingError(
        `checkpoint ${path} was written with a different configuration (hash ${header.configHash.slice(0, 12)} vs ${o.hash.slice(0, 12)}); resume with the original options or start a new run folder`,
      );
    }
    if (o.stepsPerEpoch !== undefined && header.stepsPerEpoch !== o.stepsPerEpoch) {
      throw new TrainingError(`checkpoint ${path} has ${header.stepsPerEpoch} steps per epoch, this run ${o.stepsPerEpoch}; epochs would not line up`);
    }
    if (header.optimizers.length !== optimizers.length || header.optimizers.some((h, i) => h.kind !== optimizers[i].kind)) {
      throw new TrainingError(
        `checkpoint ${path} holds optimizers [${header.optimizers.map((h) => h.kind).join(', ')}], this run uses [${optimizers.map((x) => x.kind).join(', ')}]`,
      );
    }
    const moduleNames = new Set(modules.map(([n]) => `module.${n}.`));
    const stray = [...tensors.keys()].filter((k) => !(k.startsWith('optim.') || [...moduleNames].some((p) => k.startsWith(p))));
    if (stray.length > 0) throw new TrainingError(`checkpoint ${path} holds tensors for modules this run lacks: ${stray.slice(0, 5).join(', ')}`);
    for (const [name, m] of modules) {
      const prefix = `module.${name}.`;
      const dict = new Map<string, tf.Tensor>();
      for (const [k, t] of tensors) if (k.startsWith(prefix)) dict.set(k.slice(prefix.length), t);
      const expected = new Map(m.namedEntries().map(([k, e]) => [k, e.variable.shape] as [string, readonly number[]]));
      validateTensorSet(path, `module '${name}' (${m.constructor.name})`, dict, expected);
      m.loadStateDict(dict, { source: path });
    }
    optimizers.forEach((opt, i) => {
      const prefix = `optim.${i}.`;
      const st: OptimizerState = new Map();
      for (const [k, t] of tensors) if (k.startsWith(prefix)) st.set(k.slice(prefix.length), t);
      opt.loadState(st, `checkpoint ${path}`);
    });
    if (o.extra && header.extra !== undefined) o.extra.load(header.extra);
    return { step: header.step, rng: header.rng ? Rng.fromState(header.rng.seed, header.rng.state) : null };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
