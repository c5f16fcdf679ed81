import * as tf from '@tensorflow/tfjs';
import { currentModulePath, currentModuleType } from '../nn/scope.js';

/**
 * Observes every kernel the tfjs engine executes, with its attributes and the module that ran it.
 *
 * Why a hook on `Engine.runKernelFunc` and not `tf.profile`: in tfjs 4.22 `tf.profile` reports per
 * kernel only name, inputShapes, outputShapes, bytes/tensors added, kernelTimeMs and extraInfo. It
 * has no attributes (strides, dilations, transpose flags, einsum equations), no input identities
 * (we need to know whether an operand is a parameter, and which kernel produced it) and it runs
 * after the fact, so the module scope is gone. Every op, in every backend, reaches kernels through
 * `runKernel -> runKernelFunc`; wrapping that one instance method sees exactly what executes, with
 * `currentModulePath()` still set by `Layer.call`. The wrapper holds shapes and ids, never tensors,
 * so it cannot leak memory.
 */

export interface KernelInputInfo {
  /** Name in the kernel's input map ('x', 'filter', 'a', 'b', 'bias', '0', ...). */
  name: string;
  shape: number[];
  /** tfjs tensor id, to link a kernel to the one that produced its input. */
  id: number;
  /** True when the operand is a tf.Variable (a parameter or buffer), not an activation. */
  variable: boolean;
}

export interface KernelEvent {
  /** Registered kernel name ('Conv2D', 'BatchMatMul', ...). */
  kernel: string;
  inputs: KernelInputInfo[];
  /** Primitive attributes of the call (numbers, strings, booleans and arrays of them). */
  attrs: Readonly<Record<string, unknown>>;
  outputs: { shape: number[]; id: number }[];
  /** Innermost `Layer.call` running at the time ('' outside any module, e.g. during backprop). */
  modulePath: string;
  moduleType: string;
}

/** Called after every outermost kernel; `detail` listeners get the full event. */
export type KernelListener = (e: KernelEvent | null) => void;

interface KernelInvocation {
  kernelName?: string;
  inputs?: Record<string, tf.Tensor | null | undefined>;
  attrs?: Record<string, unknown>;
}
type RunKernelFunc = (this: unknown, params: KernelInvocation) => tf.Tensor | tf.Tensor[];
/** The private engine method we wrap; declared here because tfjs types it private. */
interface HookableEngine {
  runKernelFunc: RunKernelFunc;
}

const detailed = new Set<KernelListener>();
const light = new Set<KernelListener>();
let installedOn: HookableEngine | null = null;
let wrapper: RunKernelFunc | null = null;
// Kernels whose implementation goes back through the engine are counted once, at the outermost call.
let depth = 0;

function copyAttrs(attrs: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!attrs) return out;
  for (const [k, v] of Object.entries(attrs)) {
    const t = typeof v;
    if (t === 'number' || t === 'string' || t === 'boolean') out[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'number' || typeof x === 'string')) out[k] = [...v];
  }
  return out;
}

function install(): void {
  const engine = tf.engine() as unknown as HookableEngine;
  if (installedOn === engine && engine.runKernelFunc === wrapper) return;
  const original = engine.runKernelFunc;
  const w: RunKernelFunc = function (this: unknown, params: KernelInvocation) {
    if ((detailed.size === 0 && light.size === 0) || params.kernelName === undefined) {
      // customGrad forward functions are not kernels: the ops inside them reach us on their own.
      return original.call(this, params);
    }
    const outer = depth === 0;
    let modulePath = '';
    let moduleType = '';
    if (outer && detailed.size > 0) {
      modulePath = currentModulePath();
      moduleType = currentModuleType();
    }
    depth++;
    let result: tf.Tensor | tf.Tensor[];
    try {
      result = original.call(this, params);
    } finally {
      depth--;
    }
    if (!outer) return result;
    let event: KernelEvent | null = null;
    if (detailed.size > 0) {
      const inputs: KernelInputInfo[] = [];
      for (const [name, t] of Object.entries(params.inputs ?? {})) {
        if (t == null) continue;
        inputs.push({ name, shape: [...t.shape], id: t.id, variable: t instanceof tf.Variable });
      }
      const outs = Array.isArray(result) ? result : [result];
      event = {
        kernel: params.kernelName,
        inputs,
        attrs: copyAttrs(params.attrs),
        outputs: outs.map((o) => ({ shape: [...o.shape], id: o.id })),
        modulePath,
        moduleType,
      };
      for (const l of detailed) l(event);
    }
    for (const l of light) l(event);
    return result;
  };
  engine.runKernelFunc = w;
  installedOn = engine;
  wrapper = w;
}

function uninstall(): void {
  if (detailed.size > 0 || light.size > 0 || !installedOn) return;
  // Restore the prototype method only if nobody wrapped the engine after us.
  if (installedOn.runKernelFunc === wrapper && Object.prototype.hasOwnProperty.call(installedOn, 'runKernelFunc')) {
    delete (installedOn as Partial<HookableEngine>).runKernelFunc;
  }
  installedOn = null;
  wrapper = null;
}

/**
 * Subscribe to kernel executions. `detail: false` listeners receive `null` (cheap: used by the
 * memory tracker during training); `detail: true` ones receive a KernelEvent. Returns the
 * unsubscribe function.
 */
export function addKernelListener(listener: KernelListener, opts: { detail: boolean }): () => void {
  (opts.detail ? detailed : light).add(listener);
  install();
  return () => {
    detailed.delete(listener);
    light.delete(listener);
    uninstall();
  };
}
