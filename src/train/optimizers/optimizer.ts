import * as tf from '@tensorflow/tfjs';
import { TrainingError } from '../../errors.js';
import { clipByGlobalNorm } from '../clipGradients.js';

/**
 * Optimizer state for checkpoints, keyed like PyTorch's `optimizer.state_dict()['state']`:
 * `step` (optimizer-wide step counter) and `<paramIndex>.<slot>` (e.g. `3.exp_avg`, `3.step`),
 * where paramIndex is the position of the parameter in the list given to the constructor.
 * Variable names are process-local counters, so positions are the only stable key.
 */
export type OptimizerState = Map<string, tf.Tensor>;

/** Scalar hyperparameters recorded in checkpoint headers (for humans and resume checks). */
export type Hyperparameters = Record<string, number | boolean | string>;

/** Gradients keyed by variable name, as returned by tf.variableGrads (null = no gradient). */
export type NamedGrads = Record<string, tf.Tensor | null | undefined>;

/**
 * Base of the PyTorch-semantics optimizers. One parameter group per optimizer (several
 * optimizers are used where the papers use several groups with different settings).
 *
 * Conventions copied from torch.optim so paper hyperparameters transfer:
 *  - a parameter whose gradient is missing/null in a step is skipped and its own step count does
 *    not advance (PyTorch: `if p.grad is None: continue`);
 *  - per-parameter state (slots, step) is created lazily on the parameter's first update;
 *  - `lr` is read at every step, so a schedule just assigns `optimizer.lr` before `step`.
 */
export abstract class Optimizer {
  /** Name written to checkpoints ('sgd', 'adam', 'adamw', 'stable_adamw'). */
  abstract readonly kind: string;
  readonly params: readonly tf.Variable[];
  /** Current learning rate; schedules assign it before each step. */
  lr: number;
  private stepCount = 0;
  private readonly indexByName = new Map<string, number>();
  /** Per-parameter step counts (PyTorch's state[p]['step']); 0 = no state yet. */
  protected readonly paramSteps: number[];
  /** Per-parameter slot variables, created on first update. */
  protected readonly slots: Map<number, Map<string, tf.Variable>> = new Map();

  constructor(params: readonly tf.Variable[], lr: number) {
    if (!(lr >= 0)) throw new TrainingError(`${this.constructor.name}: invalid learning rate ${lr}`);
    if (params.length === 0) throw new TrainingError(`${this.constructor.name}: empty parameter list`);
    this.params = params.slice();
    this.lr = lr;
    params.forEach((p, i) => {
      if (this.indexByName.has(p.name)) {
        // mspba.md §3 warns about duplicated parameters (each would be updated twice); refuse.
        throw new TrainingError(`${this.constructor.name}: parameter ${p.name} listed twice; list each parameter once`);
      }
      this.indexByName.set(p.name, i);
    });
    this.paramSteps = params.map(() => 0);
  }

  /** Number of completed `applyGradients` calls. */
  get steps(): number {
    return this.stepCount;
  }

  /** Hyperparameters for the checkpoint header. */
  abstract hyperparameters(): Hyperparameters;

  /** Slot names this optimizer keeps for a parameter (order = creation order). */
  protected abstract slotNames(): string[];

  /**
   * Update parameter `i` (`p`) from gradient `g`, inside a tidy owned by the caller.
   * `t` is the parameter's step number after this update (1-based, PyTorch's state['step']).
   */
  protected abstract updateParam(i: number, p: tf.Variable, g: tf.Tensor, slots: Map<string, tf.Variable>, t: number): void;

  /** Does this optimizer own a variable (by tf name)? */
  owns(v: tf.Variable): boolean {
    return this.indexByName.has(v.name);
  }

  /**
   * One optimizer step from gradients keyed by variable name (tf.variableGrads output). Entries
   * for variables this optimizer does not own are ignored, so one grads map can feed several
   * optimizers. Does not dispose the gradients.
   */
  applyGradients(grads: NamedGrads): void {
    // One tidy per parameter: the update's temporaries (~10 parameter-sized tensors for Adam)
    // are freed before the next parameter, instead of all of them living until the last one
    // (for DRAEM's 97 M parameters that would be ~4 GB, the whole wasm heap).
    this.params.forEach((p, i) => {
      const g = grads[p.name];
      if (g == null) return;
      tf.tidy(() => {
        let s = this.slots.get(i);
        if (!s) {
          s = new Map();
          for (const name of this.slotNames()) s.set(name, tf.variable(tf.zerosLike(p), false));
          this.slots.set(i, s);
        }
        this.paramSteps[i] += 1;
        this.updateParam(i, p, g, s, this.paramSteps[i]);
      });
    });
    this.stepCount += 1;
  }

  /**
   * Convenience for use outside the Trainer: compute the loss and gradients of the owned
   * trainable parameters, optionally clip, apply, and return the loss value. Leaves no tensors.
   */
  minimize(lossFn: () => tf.Scalar, opts: { clipNorm?: number } = {}): number {
    const vars = this.params.filter((p) => p.trainable);
    const { value, grads } = tf.variableGrads(lossFn, vars);
    try {
      if (opts.clipNorm !== undefined) {
        const { grads: scaled, norm } = clipByGlobalNorm(grads, opts.clipNorm);
        norm.dispose();
        try {
          this.applyGradients(scaled);
        } finally {
          tf.dispose(Object.values(scaled));
        }
      } else {
        this.applyGradients(grads);
      }
      return value.dataSync()[0];
    } finally {
      value.dispose();
      tf.dispose(Object.values(grads).filter((g): g is tf.Tensor => g != null));
    }
  }

  /** Snapshot of the optimizer state (clones; the caller disposes). */
  state(): OptimizerState {
    const out: OptimizerState = new Map();
    out.set('step', tf.scalar(this.stepCount, 'float32'));
    for (const [i, s] of [...this.slots.entries()].sort((a, b) => a[0] - b[0])) {
      out.set(`${i}.step`, tf.scalar(this.paramSteps[i], 'float32'));
      for (const [name, v] of s) out.set(`${i}.${name}`, v.clone());
    }
    return out;
  }

  /**
   * Restore `state()` output. Validates every key and shape; on mismatch throws TrainingError
   * naming `source` (the checkpoint file) and the offending keys. Does not take ownership.
   */
  loadState(state: OptimizerState, source = 'optimizer state'): void {
    const problems: string[] = [];
    const stepT = state.get('step');
    if (!stepT || stepT.size !== 1) problems.push("missing scalar 'step'");
    const perParam = new Map<number, Map<string, tf.Tensor>>();
    const names = new Set(this.slotNames());
    for (const [k, t] of state) {
      if (k === 'step') continue;
      const m = /^(\d+)\.(.+)$/.exec(k);
      const i = m ? Number(m[1]) : -1;
      if (!m || i >= this.params.length || (m[2] !== 'step' && !names.has(m[2]))) {
        problems.push(`unexpected key '${k}'`);
        continue;
      }
      if (m[2] !== 'step' && !sameShape(t.shape, this.params[i].shape)) {
        problems.push(`'${k}' has shape [${t.shape}] but parameter ${i} has [${this.params[i].shape}]`);
        continue;
      }
      if (!perParam.has(i)) perParam.set(i, new Map());
      perParam.get(i)?.set(m[2], t);
    }
    for (const [i, m] of perParam) {
      for (const n of ['step', ...names]) if (!m.has(n)) problems.push(`parameter ${i} lacks '${i}.${n}'`);
    }
    if (problems.length > 0) {
      throw new TrainingError(
        `${source}: ${this.kind} optimizer state does not match ${this.params.length} parameters: ${problems.slice(0, 6).join('; ')}${problems.length > 6 ? '; ...' : ''}`,
      );
    }
    this.clearSlots();
    this.stepCount = Math.round((stepT as tf.Tensor).dataSync()[0]);
    this.paramSteps.fill(0);
    for (const [i, m] of perParam) {
      this.paramSteps[i] = Math.round((m.get('step') as tf.Tensor).dataSync()[0]);
      const s = new Map<string, tf.Variable>();
      for (const n of this.slotNames()) {
        const t = m.get(n) as tf.Tensor;
        s.set(n, tf.variable(t.dtype === 'float32' ? t.clone() : t.cast('float32'), false));
      }
      this.slots.set(i, s);
    }
  }

  private clearSlots(): void {
    for (const s of this.slots.values()) for (const v of s.values()) v.dispose();
    this.slots.clear();
  }

  /** Free the slot variables (parameters belong to their modules). */
  dispose(): void {
    this.clearSlots();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
