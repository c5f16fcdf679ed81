import * as tf from '@tensorflow/tfjs';
import { WeightsError } from '../errors.js';
import { withModuleScope } from './scope.js';
import { noGrad } from './gradControl.js';

/**
 * How a parameter is laid out in PyTorch, so checkpoints in torchvision/timm layout convert on load.
 * We store tensors in tfjs layout: conv filters HWIO, depthwise [kh,kw,C,1], linear [in,out].
 */
export type TorchLayout =
  | 'same' // identical shape (biases, norms, embeddings)
  | 'conv2d' // torch [O, I, kh, kw] -> tfjs [kh, kw, I, O]
  | 'conv1d' // torch [O, I, k] -> tfjs conv1d filter [k, I, O]
  | 'convTranspose2d' // torch [I, O, kh, kw] -> tfjs conv2dTranspose filter [kh, kw, O, I]
  | 'depthwise' // torch [C*m, 1, kh, kw] -> tfjs [kh, kw, C, m]
  | 'linear'; // torch [out, in] -> tfjs [in, out]

export interface ParamEntry {
  variable: tf.Variable;
  torchLayout: TorchLayout;
  kind: 'parameter' | 'buffer';
}

export type StateDict = Map<string, tf.Tensor>;

/** Convert a tensor from PyTorch layout to ours. The caller owns the result. */
export function fromTorchLayout(t: tf.Tensor, layout: TorchLayout): tf.Tensor {
  switch (layout) {
    case 'same':
      return t.clone();
    case 'conv2d':
    case 'convTranspose2d':
      return tf.transpose(t, [2, 3, 1, 0]);
    case 'conv1d':
      return tf.transpose(t, [2, 1, 0]);
    case 'depthwise': {
      // torch [C*m, 1, kh, kw], channel c*m + j is multiplier j of input channel c.
      const [cm, , kh, kw] = t.shape;
      return tf.tidy(() => tf.transpose(t, [2, 3, 0, 1]).reshape([kh, kw, cm, 1]));
    }
    case 'linear':
      return tf.transpose(t, [1, 0]);
  }
}

/** Inverse of fromTorchLayout, for writing checkpoints PyTorch can read. */
export function toTorchLayout(t: tf.Tensor, layout: TorchLayout): tf.Tensor {
  switch (layout) {
    case 'same':
      return t.clone();
    case 'conv2d':
    case 'convTranspose2d':
      return tf.transpose(t, [3, 2, 0, 1]);
    case 'conv1d':
      return tf.transpose(t, [2, 1, 0]);
    case 'depthwise': {
      const [kh, kw, c, m] = t.shape;
      return tf.tidy(() => tf.transpose(t.reshape([kh, kw, c * m, 1]), [2, 3, 0, 1]));
    }
    case 'linear':
      return tf.transpose(t, [1, 0]);
  }
}

let variableCounter = 0;

let recomputeDepth = 0;

/**
 * True while gradient checkpointing (src/nn/checkpoint.ts) re-runs a forward to get its
 * gradients. Layers with side effects in their training forward (BatchNorm's running statistics)
 * may skip them then: the original forward already applied them once. checkpoint() also restores
 * every buffer of the modules it recomputes, so a layer that ignores this flag stays correct.
 */
export function isRecomputing(): boolean {
  return recomputeDepth > 0;
}

/** Runs `f` with isRecomputing() true (nestable). */
export function whileRecomputing<T>(f: () => T): T {
  recomputeDepth++;
  try {
    return f();
  } finally {
    recomputeDepth--;
  }
}

/**
 * Base class of every network piece, modelled on torch.nn.Module: named parameters and buffers,
 * child modules, train/eval mode, and state dicts whose dotted names match torchvision/timm so
 * their checkpoints load strictly.
 */
export abstract class Module {
  /** Dotted path from the root module; set when registered as a child. */
  path = '';
  protected training = true;
  private frozen = false;
  private readonly params = new Map<string, ParamEntry>();
  private readonly buffers = new Map<string, ParamEntry>();
  private readonly children = new Map<string, Module>();

  /** Register a trainable parameter; `init` is disposed after copying into a variable. */
  protected addParameter(name: string, init: tf.Tensor, torchLayout: TorchLayout = 'same', trainable = true): tf.Variable {
    const v = tf.variable(init, trainable, `p${variableCounter++}_${name}`);
    init.dispose();
    this.params.set(name, { variable: v, torchLayout, kind: 'parameter' });
    return v;
  }

  /** Register non-trainable state saved in checkpoints (BatchNorm running statistics). */
  protected addBuffer(name: string, init: tf.Tensor): tf.Variable {
    const v = tf.variable(init, false, `b${variableCounter++}_${name}`);
    init.dispose();
    this.buffers.set(name, { variable: v, torchLayout: 'same', kind: 'buffer' });
    return v;
  }

  protected addModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    m.setPath(this.path ? `${this.path}.${name}` : name);
    return m;
  }

  private setPath(path: string): void {
    this.path = path;
    for (const [name, child] of this.children) child.setPath(`${path}.${name}`);
  }

  namedChildren(): [string, Module][] {
    return [...this.children.entries()];
  }

  /** All (name, entry) pairs, parameters then buffers, depth first like PyTorch's state_dict. */
  namedEntries(prefix = ''): [string, ParamEntry][] {
    const out: [string, ParamEntry][] = [];
    for (const [n, e] of this.params) out.push([prefix + n, e]);
    for (const [n, e] of this.buffers) out.push([prefix + n, e]);
    for (const [n, c] of this.children) out.push(...c.namedEntries(`${prefix}${n}.`));
    return out;
  }

  namedParameters(prefix = ''): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = [];
    for (const [n, e] of this.params) out.push([prefix + n, e.variable]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Buffer variables (BatchNorm running statistics, ...), depth first. */
  bufferVariables(): tf.Variable[] {
    return this.namedEntries()
      .filter(([, e]) => e.kind === 'buffer')
      .map(([, e]) => e.variable);
  }

  /** Trainable variables, for optimizers and tf.variableGrads. */
  trainableVariables(): tf.Variable[] {
    return this.namedEntries()
      .filter(([, e]) => e.kind === 'parameter' && e.variable.trainable)
      .map(([, e]) => e.variable);
  }

  /** Number of parameters (buffers excluded), as torch's sum(p.numel() for p in parameters()). */
  numParameters(): number {
    return this.namedParameters().reduce((s, [, v]) => s + v.size, 0);
  }

  /** Freeze or unfreeze every parameter (e.g. a pretrained backbone). */
  setTrainable(trainable: boolean): this {
    for (const [, e] of this.namedEntries()) {
      if (e.kind === 'parameter') e.variable.trainable = trainable;
    }
    return this;
  }

  /**
   * A frozen module (e.g. a pretrained backbone) runs off the gradient tape: its parameters are
   * made non-trainable and Layer.call runs its forward under noGrad (src/nn/gradControl.ts), so
   * inside a training step nothing of it is recorded or kept for backward and its outputs are
   * constants. Children freeze with it. Train/eval mode is separate (torch: requires_grad_(False)
   * + no_grad, and .eval() on its own): call eval() too for BatchNorm running statistics.
   * Modules that are not Layers (multi-output backbones) run their own entry point through
   * runFrozen(this, ...).
   */
  freeze(): this {
    this.setTrainable(false);
    this.setFrozen(true);
    return this;
  }

  /** Undoes freeze(): parameters trainable again, forward back on the tape. */
  unfreeze(): this {
    this.setTrainable(true);
    this.setFrozen(false);
    return this;
  }

  private setFrozen(frozen: boolean): void {
    this.frozen = frozen;
    for (const c of this.children.values()) c.setFrozen(frozen);
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  get isTraining(): boolean {
    return this.training;
  }

  /** Snapshot of parameters and buffers (clones; caller disposes). */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [n, e] of this.namedEntries()) out.set(n, e.variable.clone());
    return out;
  }

  /**
   * Assign from a state dict in our layout. Strict mode requires the exact name set; shapes must
   * always match. Errors list every offending name, as PyTorch's load_state_dict does.
   */
  loadStateDict(dict: StateDict, opts: { strict?: boolean; source?: string } = {}): void {
    const strict = opts.strict ?? true;
    const source = opts.source ? ` from ${opts.source}` : '';
    const entries = new Map(this.namedEntries());
    const missing = [...entries.keys()].filter((k) => !dict.has(k));
    const unexpected = [...dict.keys()].filter((k) => !entries.has(k));
    const mismatched: string[] = [];
    for (const [k, e] of entries) {
      const t = dict.get(k);
      if (t && !shapesEqual(t.shape, e.variable.shape)) {
        mismatched.push(`${k}: checkpoint [${t.shape}] vs model [${e.variable.shape}]`);
      }
    }
    if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      const parts: string[] = [];
      if (missing.length) parts.push(`missing keys (${missing.length}): ${preview(missing)}`);
      if (unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${preview(unexpected)}`);
      if (mismatched.length) parts.push(`shape mismatches (${mismatched.length}): ${preview(mismatched)}`);
      throw new WeightsError(`cannot load state dict${source} into ${this.constructor.name}: ${parts.join('; ')}`);
    }
    for (const [k, e] of entries) {
      const t = dict.get(k);
      // tidy: the cast copy (e.g. an int checkpoint value) must not leak.
      if (t) tf.tidy(() => e.variable.assign(t.dtype === e.variable.dtype ? t : t.cast(e.variable.dtype)));
    }
  }

  /** Load a state dict in PyTorch layout (safetensors from torchvision/timm/HF), converting each tensor. */
  loadTorchStateDict(dict: StateDict, opts: { strict?: boolean; source?: string } = {}): void {
    const entries = new Map(this.namedEntries());
    const converted: StateDict = new Map();
    try {
      for (const [k, t] of dict) {
        const e = entries.get(k);
        let c = e ? fromTorchLayout(t, e.torchLayout) : t.clone();
        // fromTorchLayout cannot tell C from the multiplier m of a depthwise [C*m, 1, kh, kw]
        // weight and returns [kh, kw, C*m, 1]; torch channel c*m + j is (c, j) in our [kh, kw, C, m].
        if (e && e.torchLayout === 'depthwise' && c.size === e.variable.size && !shapesEqual(c.shape, e.variable.shape)) {
          const r = c.reshape(e.variable.shape);
          c.dispose();
          c = r;
        }
        converted.set(k, c);
      }
      this.loadStateDict(converted, opts);
    } finally {
      for (const t of converted.values()) t.dispose();
    }
  }

  /** State dict in PyTorch layout, for safetensors files PyTorch can load. */
  torchStateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [n, e] of this.namedEntries()) out.set(n, toTorchLayout(e.variable, e.torchLayout));
    return out;
  }

  dispose(): void {
    for (const e of this.params.values()) e.variable.dispose();
    for (const e of this.buffers.values()) e.variable.dispose();
    for (const c of this.children.values()) c.dispose();
  }
}

/**
 * A module with a single-tensor forward. `call` wraps `forward` in a module scope so kernel-level
 * meters can attribute work to `path`.
 */
export abstract class Layer<I = tf.Tensor, O = tf.Tensor> extends Module {
  abstract forward(x: I): O;

  call(x: I): O {
    return runFrozen(this, () => withModuleScope(this.path || this.constructor.name, this.constructor.name, () => this.forward(x)));
  }
}

/** fn() under noGrad when `m` is frozen (see Module.freeze), else as is. */
export function runFrozen<T>(m: Module, fn: () => T): T {
  return m.isFrozen ? noGrad(fn) : fn();
}

function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function preview(xs: string[]): string {
  return xs.length <= 6 ? xs.join(', ') : `${xs.slice(0, 6).join(', ')}, ...`;
}
