/**
 * GMAC of one DINOv2 ViT encoder forward at batch 1, counted by the kernel-level MAC counter
 * (src/energy/macs.ts), true MACs and the ptflops convention of the paper's Table 6 (TABLE6.md):
 *   npx tsx experiments/vit-gmac.ts [--variant dinov2_vitb14_reg4] [--size 392] [--blocks 9]
 * --blocks N runs blocks 0..N (Dinomaly: 9, dinomaly.md §2); --blocks all runs every block + the
 * final norm. Weights are the random init: MACs do not depend on them.
 */
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.js';
import { countMacs } from '../src/energy/macs.js';
import { ConfigError } from '../src/errors.js';
import { VIT_CONFIGS, dinov2ViT, type ViTVariant } from '../src/models/backbones/vit.js';
import { runCli, yargsFail } from './cli.js';

async function main(): Promise<void> {
  const argv = yargs(hideBin(process.argv))
    .scriptName('vit-gmac')
    .option('variant', { type: 'string', choices: Object.keys(VIT_CONFIGS), default: 'dinov2_vitb14_reg4' })
    .option('size', { type: 'number', default: 392, describe: 'square input side (a multiple of 14)' })
    .option('blocks', { type: 'string', default: '9', describe: "last block run (0-based), or 'all' (+ final norm)" })
    .option('backend', { type: 'string', choices: ['wasm', 'cpu'], default: 'wasm' })
    .strict()
    .version(false)
    .help()
    .fail(yargsFail)
    .parseSync();
  await initBackend(argv.backend as 'wasm' | 'cpu');
  const vit = dinov2ViT(argv.variant as ViTVariant).eval();
  const all = argv.blocks === 'all';
  const last = all ? vit.blocks.length - 1 : Number(argv.blocks);
  if (!Number.isInteger(last) || last < 0 || last >= vit.blocks.length) throw new ConfigError(`--blocks ${argv.blocks}: expected 0..${vit.blocks.length - 1} or 'all'`);
  const x = tf.zeros([1, argv.size, argv.size, 3]) as tf.Tensor4D;
  const t0 = Date.now();
  const report = countMacs(() => (all ? vit.forward(x) : vit.forwardLayers(x, [last]).last), { modules: vit });
  const g = (v: number): string => (v / 1e9).toFixed(3);
  process.stdout.write(
    `${argv.variant} ${argv.size}x${argv.size}, ${all ? 'all blocks + norm' : `blocks 0..${last}`}: ` +
      `params ${vit.numParameters()}, true GMAC ${g(report.totals.macs)}, ptflops GMAC ${g(report.totals.macsPtflops)} ` +
      `(pass ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`,
  );
  x.dispose();
  vit.dispose();
}

runCli(main);
