import * as tf from '@tensorflow/tfjs';
import { isRecordingGradients } from './tape.js';
import { runLayers, type Sequential } from './layers/sequential.js';
import { type Layer, type Module, whileRecomputing } from './module.js';

/**
 * Gradient checkpointing (activation recomputation, torch.utils.checkpoint): run a piece of the
 * network without keeping its intermediate activations for the backward pass, and re-run it when
 * the backward pass reaches it.
 *
 * tfjs keeps, until the end of the whole backward pass, every tensor a recorded kernel saved AND
 * the gradient of every intermediate tensor (tape.ts accumulates them in one map that is only
 * freed with the backward tidy). Inside a checkpoint both exist only while that piece's own
 * backward runs: the outer tape holds the piece's inputs (and its output, if a later kernel
 * saves it) and the outer gradient map holds one gradient per input.
 *
 * How: one tf.customGrad op whose inputs are the piece's inputs AND the trainable variables of
 * the modules it uses (customGrad only differentiates with respect to its inputs, so the
 * variables must be inputs for tf.variableGrads / optimizer.minimize to see their gradients).
 * Its forward runs inside the engine's kernel scope, where nothing is recorded, and saves only
 * the inputs. Its backward re-runs `fn` under engine.gradients for [inputs, variables] with the
 * incoming dy, on a fresh tape (the outer backward's tape is set aside and restored: at gradient
 * depth 0 engine.gradients would otherwise replace it and set it to null when it finishes).
 *
 * Constraints on `fn`:
 *  - Deterministic given its inputs and the module state: no dropout or other random ops (the
 *    recomputation would draw different numbers and the gradients would be wrong). DRAEM's
 *    networks have none. A layer with randomness would have to replay its seed.
 *  - Every tensor it reads that needs a gradient is either one of `inputs` or a trainable
 *    variable of a module in `scope`. A trainable variable of another module is caught during
 *    recomputation (error); a tensor computed from trainable variables OUTSIDE `fn` and captured
 *    by the closure is not, and would silently get no gradient through this piece.
 *  - Side effects on module state (BatchNorm's running statistics in training mode) happen in
 *    the forward; during recomputation isRecomputing() is true so layers may skip them, and
 *    checkpoint() restores every buffer of the `scope` modules afterwards, so they are applied
 *    exactly once either way. Batch statistics are recomputed from the same saved input, so the
 *    recomputed forward equals the original.
 *  - One output tensor (tf.customGrad's limit).
 *
 * Outside a gradient recording (inference, eval, or any call not under tf.grads / variableGrads /
 * optimizer.minimize) `fn` just runs: no overhead. Inside a recomputation (nested checkpoints)
 * the inner pieces are checkpointed again, which trades a third forward for less memory.
 * Under higher-order gradients (a gradient computation inside another's forward) the result is
 * still correct but the recomputed tape joins the outer one, so memory is not saved.
 */

interface EngineState {
  activeTape: { inputs: Record<string, tf.Tensor>; saved?: tf.Tensor[] }[] | null;
  gradientDepth: number;
  activeScope: { id: number } | null;
}

function engineState(): EngineState {
  return (tf.engine() as unknown as { state: EngineState }).state;
}

export { isRecordingGradients };

export type CheckpointScope = Module | readonly Module[];

function scopeModules(scope: CheckpointScope): readonly Module[] {
  return Array.isArray(scope) ? (scope as readonly Module[]) : [scope as Module];
}

/**
 * `fn(...inputs)` without keeping its activations for the backward pass; see the file comment.
 * `scope`: the module(s) whose parameters and buffers `fn` uses.
 */
export function checkpoint<I extends tf.Tensor[], O extends tf.Tensor>(fn: (...xs: I) => O, inputs: I, scope: CheckpointScope): O {
  if (!isRecordingGradients()) return fn(...inputs);
  const modules = scopeModules(scope);
  const params = [...new Set(modules.flatMap((m) => m.trainableVariables()))];
  const buffers = [...new Set(modules.flatMap((m) => m.bufferVariables()))];
  const nIn = inputs.length;

  const backward = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor[] => {
    const xs = saved.slice(0, nIn) as I;
    const targets = [...xs, ...params];
    const st = engineState();
    const ownTape = st.gradientDepth === 0;
    const outerTape = st.activeTape;
    // dy was made by this backward pass (not handed in by the caller of tf.grads) when it
    // belongs to the backward pass's own scope.
    const backwardScope = st.activeScope?.id;
    const dyOwned = !dy.kept && backwardScope !== undefined && (dy as unknown as { scopeId?: number }).scopeId === backwardScope;
    const snapshot = buffers.map((b) => b.clone());
    let grads: tf.Tensor[];
    let innerTape: EngineState['activeTape'] = null;
    try {
      if (ownTape) st.activeTape = null;
      grads = whileRecomputing(() =>
        tf.tidy(() => {
          const { grads: g } = tf.engine().gradients(() => {
            innerTape = st.activeTape;
            const y = fn(...xs);
            if (ownTape) checkCapturedVariables(st.activeTape ?? [], targets);
            return y;
          }, targets, dy, true);
          // Inputs the output does not depend on (or non-float inputs) get zeros.
          return targets.map((t, i) => g[i] ?? tf.zeros(t.shape, 'float32'));
        }),
      );
    } catch (e) {
      // tfjs frees a tape's saved tensors (kept, so no tidy frees them) only when its backward
      // pass completes; an error aborts both the recomputation's and the outer backward pass.
      if (ownTape) for (const tape of [innerTape, outerTape]) for (const node of tape ?? []) tf.dispose(node.saved ?? []);
      throw e;
    } finally {
      if (ownTape) st.activeTape = outerTape;
      buffers.forEach((b, i) => b.assign(snapshot[i]));
      tf.dispose(snapshot);
    }
    if (ownTape) {
      // Free now what tfjs would otherwise keep until the whole backward pass ends: the saved
      // inputs (the engine disposes node.saved only at the end; disposing twice is a no-op) and
      // dy, the gradient of this piece's output, which the engine reads only for this node (its
      // producer). Only with our own tape: under higher-order gradients they may be read again.
      tf.dispose(saved);
      if (dyOwned && !grads.includes(dy)) dy.dispose();
    }
    return grads;
  };

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, nIn) as I;
    const value = fn(...xs);
    save(xs);
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved) };
  });
  return op(...inputs, ...params) as O;
}

/** `layer.call(x)` checkpointed with the layer as scope (or plainly when `enabled` is false). */
export function checkpointCall<L extends Layer<tf.Tensor4D, tf.Tensor4D>>(layer: L, x: tf.Tensor4D, enabled = true): tf.Tensor4D {
  return enabled ? checkpoint((t: tf.Tensor4D) => layer.call(t), [x], layer) : layer.call(x);
}

/** A trainable variable read inside `fn` but not in `scope` would get no gradient: refuse. */
function checkCapturedVariables(tape: { inputs: Record<string, tf.Tensor> }[], targets: tf.Tensor[]): void {
  const known = new Set(targets.map((t) => t.id));
  for (const node of tape) {
    for (const t of Object.values(node.inputs)) {
      if (t instanceof tf.Variable && t.trainable && !known.has(t.id)) {
        throw new Error(`checkpoint: the checkpointed function reads trainable variable '${t.name}', which is not a parameter of the modules in its scope; add its module to the scope or it gets no gradient`);
      }
    }
  }
}

/**
 * torch.utils.checkpoint.checkpoint_sequential: `seq`'s layers split into `segments` runs of
 * consecutive layers (as equal as possible), each checkpointed with its own layers as scope.
 * `segments` = 1 checkpoints the whole Sequential as one piece; ≥ the number of layers, each layer.
 */
export function checkpointSequential<T extends tf.Tensor>(seq: Sequential<T>, x: T, segments: number): T {
  if (!isRecordingGradients()) return seq.call(x);
  const layers = seq.layers;
  const k = Math.max(1, Math.min(segments, layers.length));
  let y = x;
  for (let s = 0; s < k; s++) {
    const part = layers.slice(Math.floor((s * layers.length) / k), Math.floor(((s + 1) * layers.length) / k));
    const next = checkpointLayers(part, y);
    if (y !== x) y.dispose();
    y = next;
  }
  return y;
}

/** `layers` applied in order, as one checkpointed piece (scope: the layers). */
export function checkpointLayers<T extends tf.Tensor>(layers: readonly Layer<T, T>[], x: T): T {
  return checkpoint((t: T) => runLayers(layers, t), [x] as [T], layers);
}
