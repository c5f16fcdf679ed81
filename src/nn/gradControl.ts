/**
 * Gradient controls tfjs 4.22 lacks: torch.no_grad, detach, and a gradient computed inside an
 * outer training step (GLASS's gradient ascent, glass.md §3 step 3).
 *
 * How tfjs records (tfjs-core engine.ts): an op is put on `state.activeTape`, with the tensors its
 * gradient needs cloned and kept, whenever `isTapeOn()`, i.e. `gradientDepth > 0 && kernelDepth
 * === 0`. A tf.grad / variableGrads inside another one (gradientDepth 2) appends to the SAME tape,
 * and its backward ops are recorded too (tfjs keeps everything for a higher-order gradient, and
 * src/nn/backprop.ts frees nothing eagerly below depth 0). So a plain tf.grad inside a step makes
 * the outer gradient differentiate through the inner gradient, and every inner iteration's
 * tensors stay alive until the outer backward pass ends. The controls below change the engine
 * state that decides this, and restore it in a finally block:
 *   - noGrad raises kernelDepth, the counter tfjs itself raises while a kernel runs, so nothing
 *     is recorded or saved (the tape is not touched);
 *   - innerGrad swaps the outer tape out and runs its gradient at depth 0 on a fresh tape, so the
 *     inner pass is a complete, eager (memory-freeing) backward pass of its own and the outer tape
 *     never sees it.
 */
import * as tf from '@tensorflow/tfjs';

interface TapeState {
  activeTape: unknown[] | null;
  gradientDepth: number;
  kernelDepth: number;
}

interface EngineTapeInternals {
  state: TapeState;
}

function engineState(): TapeState {
  return (tf.engine() as unknown as EngineTapeInternals).state;
}

/** Nodes on the tape being recorded now (0 when none): what tests and memory probes look at. */
export function activeTapeLength(): number {
  return engineState().activeTape?.length ?? 0;
}

/**
 * Runs `fn` with nothing recorded for backward, as torch.no_grad: ops inside save no tensors and
 * their outputs are constants to any enclosing gradient. A tf.grad started inside fails (no path)
 * — use innerGrad for a gradient inside a no-grad region. Side effects still happen (a BatchNorm
 * in training mode still updates its running statistics, as under torch.no_grad).
 */
export function noGrad<T>(fn: () => T): T {
  const s = engineState();
  s.kernelDepth++;
  try {
    return fn();
  } finally {
    s.kernelDepth--;
  }
}

/**
 * x as a new tensor outside every gradient (torch's x.detach(), TensorFlow's tf.stop_gradient):
 * identity forward; no gradient flows back through it. Where every path from a variable goes
 * through stopGradient, tfjs reports no gradient for it (variableGrads omits it, tf.grad throws),
 * as torch leaves .grad None; elsewhere the stopped path contributes exactly zero. Nothing is
 * saved and the producer of x is not walked in the backward pass. Shares x's data (Identity);
 * the caller disposes the result.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return noGrad(() => tf.clone(x));
}

/**
 * f(x) and ∂f/∂x, computed on a tape of their own even inside an outer tf.grad / variableGrads:
 * the outer gradient treats both results as constants (the inner gradient is not differentiated
 * again, unlike a nested tf.grad), and the inner pass frees its saved tensors when it ends, so
 * repeated calls in one step do not grow memory. Variables f reads get no gradient from it.
 * The caller disposes `value` and `grad`.
 *
 * GLASS's ascent (glass.md §3 step 3) is then, per iteration,
 *   const { value, grad } = innerGrad((g) => bce(D(g), 1), G);
 *   G = noGrad(() => G + η·grad/‖grad‖)   // the update off the outer tape too, or its saved
 *                                          // tensors pile up until the outer backward pass
 * and the final G enters the outer loss as T + stopGradient(G − T).
 */
export function innerGrad<T extends tf.Tensor>(f: (x: T) => tf.Scalar, x: T): { value: tf.Scalar; grad: T } {
  const s = engineState();
  const saved: TapeState = { activeTape: s.activeTape, gradientDepth: s.gradientDepth, kernelDepth: s.kernelDepth };
  s.activeTape = null;
  s.gradientDepth = 0;
  s.kernelDepth = 0;
  try {
    const { value, grad } = tf.valueAndGrad(f)(x);
    return { value: value as tf.Scalar, grad };
  } finally {
    s.activeTape = saved.activeTape;
    s.gradientDepth = saved.gradientDepth;
    s.kernelDepth = saved.kernelDepth;
  }
}
