/**
 * engine.gradients with memory freed as the backward pass goes (tfjs 4.22 engine internals).
 *
 * Why: tfjs' backward pass (tfjs-core engine.gradients + tape.ts backpropagateGradients) keeps
 * every intermediate gradient until the whole pass ends (they live in the 'backward' tidy
 * scope) and disposes the tensors each op saved for its gradient only at the very end. So at the
 * end of a training step's backward pass every activation AND a same-sized gradient of it are
 * alive at once: measured on DRAEM's official networks at 128², batch 2, 1.1 GB of saved
 * activations grew to 2.1 GB by the end of the backward pass, and batch 4 does not fit wasm32's
 * 4 GB at all without gradient checkpointing.
 *
 * What changes: nodes are processed in the same reverse order with the same gradient functions,
 * error checks and accumulation (so gradients are identical), and at gradient depth 0 (not inside
 * a higher-order gradient, where tfjs keeps everything for the outer pass) each node then frees
 * (a) the gradients of its outputs — the node is their producer, so every consumer has already
 * contributed and nothing reads them again — unless one is a requested result or the caller's dy,
 * and (b) the tensors it saved for its gradient (tfjs disposes them again at the end: a no-op).
 * A gradient object shared by several map entries (a gradient function returning its dy as is)
 * is disposed only when the last entry lets go of it.
 */
import * as tf from '@tensorflow/tfjs';

interface TapeNode {
  id: number;
  kernelName: string;
  outputs: tf.Tensor[];
  inputs: Record<string, tf.Tensor>;
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients: GradientsFn;
}

type GradientsFn = (f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean) => { value: tf.Tensor; grads: tf.Tensor[] };

/** The nodes on a path from some x to y, in tape order, each with only its inputs that depend on an x. */
export function nodesFromXsToY(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodeFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodeToY.add(node.id);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodeFromX.has(node.id) || !nodeToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/** Accumulated gradients by tensor id, with a count of entries per gradient object. */
class GradientMap {
  readonly byId = new Map<number, tf.Tensor>();
  private readonly refs = new Map<tf.Tensor, number>();

  get(id: number): tf.Tensor | undefined {
    return this.byId.get(id);
  }

  set(id: number, t: tf.Tensor): void {
    this.release(id, false);
    this.byId.set(id, t);
    this.refs.set(t, (this.refs.get(t) ?? 0) + 1);
  }

  holds(t: tf.Tensor): boolean {
    return this.refs.has(t);
  }

  /** Drops the entry; disposes its tensor when no entry holds it any more and `dispose`. */
  release(id: number, dispose: boolean, keep?: ReadonlySet<tf.Tensor>): void {
    const t = this.byId.get(id);
    if (!t) return;
    this.byId.delete(id);
    const n = (this.refs.get(t) ?? 1) - 1;
    if (n > 0) {
      this.refs.set(t, n);
      return;
    }
    this.refs.delete(t);
    if (dispose && !keep?.has(t)) t.dispose();
  }
}

function backpropagate(
  map: GradientMap, tape: readonly TapeNode[], tidy: (f: () => tf.Tensor) => tf.Tensor, eager: boolean,
  resultIds: ReadonlySet<number>, keep: ReadonlySet<tf.Tensor>,
): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    const dys = node.outputs.map((o) => map.get(o.id) ?? null);
    if (node.gradient == null) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGradients = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      if (!(name in inputGradients)) {
        throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`);
      }
      const dx = tidy(() => inputGradients[name]());
      if (dx.dtype !== 'float32') {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`);
      }
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`);
      }
      const cur = map.get(x.id);
      if (cur == null) {
        map.set(x.id, dx);
      } else {
        const sum = tf.add(cur, dx);
        map.release(x.id, true, keep); // tfjs disposes the replaced sum too
        map.set(x.id, sum);
        if (eager && !map.holds(dx) && !keep.has(dx)) dx.dispose();
      }
    }
    if (!eager) continue;
    for (const o of node.outputs) if (!resultIds.has(o.id)) map.release(o.id, true, keep);
    // a gradient function may hand back a saved tensor as a gradient: those stay
    for (const t of node.saved ?? []) if (!map.holds(t) && !keep.has(t)) t.dispose();
  }
}

let original: GradientsFn | null = null;

/** Replaces the engine's gradients method (idempotent). Every tf.grads / variableGrads / minimize uses it. */
export function installEagerBackprop(): void {
  if (original) return;
  const engine = tf.engine() as unknown as EngineInternals;
  original = engine.gradients;
  engine.gradients = function gradients(this: EngineInternals, f, xs, dy, allowNoGradients = false) {
    tf.util.assert(xs.length > 0, () => 'gradients() received an empty list of xs.');
    if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
    const y = this.scopedRun(() => this.startTape(), () => this.endTape(), () => this.tidy('forward', f));
    tf.util.assert(y instanceof tf.Tensor, () => 'The result y returned by f() must be a tensor.');
    const tape = nodesFromXsToY(this.state.activeTape ?? [], xs, y);
    if (!allowNoGradients && tape.length === 0 && xs.length > 0) {
      throw new Error('Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.');
    }
    return this.tidy('backward', () => {
      const map = new GradientMap();
      map.set(y.id, dy ?? tf.ones(y.shape));
      const eager = this.state.gradientDepth === 0;
      const keep = new Set<tf.Tensor>(dy ? [dy] : []);
      backpropagate(map, tape, (g) => this.tidy(g), eager, new Set(xs.map((x) => x.id)), keep);
      const grads = xs.map((x) => map.get(x.id) as tf.Tensor);
      if (eager) {
        for (const node of this.state.activeTape ?? []) for (const t of node.saved ?? []) t.dispose();
        this.state.activeTape = null;
      }
      return { value: y, grads };
    });
  } as GradientsFn;
}

/** Restores tfjs' own engine.gradients (tests, A/B runs). */
export function uninstallEagerBackprop(): void {
  if (!original) return;
  (tf.engine() as unknown as EngineInternals).gradients = original;
  original = null;
}
