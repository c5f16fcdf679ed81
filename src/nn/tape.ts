import * as tf from '@tensorflow/tfjs';

/**
 * True while tfjs records a gradient tape (inside tf.grad(s) / variableGrads / minimize): what
 * decides whether folded layers may stand in for trainable ones (layers/fold.ts) and whether
 * gradient checkpointing has anything to save (checkpoint.ts).
 */
export function isRecordingGradients(): boolean {
  return (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
}
