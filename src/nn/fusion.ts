/**
 * Layer fusion switch. With fusion on (the default), the layers run fewer, larger kernels with
 * the same results to float32 rounding:
 *  - BatchNorm2d training forward on NHWC is one tf.customGrad op with the closed-form backward
 *    (src/nn/layers/norm.ts);
 *  - Conv2d with stride 1 and symmetric padding (k-1)/2 uses tfjs 'same' padding instead of an
 *    explicit tf.pad copy (src/nn/layers/conv.ts);
 *  - eval-mode conv + BatchNorm (+ activation) pairs of the ResNet backbones run as one
 *    tf.fused.conv2d with folded weights (src/nn/layers/fold.ts).
 * Off, every layer runs its plain op chain (the PyTorch module structure kernel by kernel). The MAC
 * counter (src/energy/macs.ts) turns it off so per-layer rows and the parameters that ran are
 * attributed to the modules PyTorch has; `ADBENCH_LAYER_FUSION=0` turns it off for a process
 * (A/B measurements).
 */
let enabled = process.env.ADBENCH_LAYER_FUSION !== '0';

export function layerFusionEnabled(): boolean {
  return enabled;
}

/** Sets the switch; returns the previous value. */
export function setLayerFusion(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** Runs `fn` with fusion off (restored afterwards, also on throw). */
export function withoutLayerFusion<T>(fn: () => T): T {
  const prev = setLayerFusion(false);
  try {
    return fn();
  } finally {
    setLayerFusion(prev);
  }
}
