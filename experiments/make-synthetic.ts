/**
 * Write the seeded synthetic dataset in the MVTec AD layout.
 *
 *   npx tsx experiments/make-synthetic.ts --out data/synthetic [--categories a,b] [--size 128]
 *       [--seed 0] [--n-train 60] [--n-test-good 15] [--n-per-defect 10]
 *
 * Then train on it with the folder as data root (--data data/synthetic). The data is
 * synthetic: results on it are not comparable to the paper.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AdbenchError, ConfigError } from '../src/errors.js';
import {
  DEFAULT_SYNTHETIC_OPTIONS, generateSyntheticCategory, isSyntheticCategory, SYNTHETIC_CATEGORIES,
} from '../src/data/synthetic/index.js';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('make-synthetic')
    .usage('$0 --out DIR [options]\n\nWrite synthetic categories in the MVTec AD layout.')
    .option('out', { type: 'string', demandOption: true, describe: 'dataset root to write <out>/<category>/ into' })
    .option('categories', {
      type: 'string', default: SYNTHETIC_CATEGORIES.join(','),
      describe: `comma-separated, from: ${SYNTHETIC_CATEGORIES.join(', ')}`,
    })
    .option('size', { type: 'number', default: DEFAULT_SYNTHETIC_OPTIONS.size, describe: 'square image side (px)' })
    .option('seed', { type: 'number', default: 0, describe: 'random seed (same seed, same bytes)' })
    .option('n-train', { type: 'number', default: DEFAULT_SYNTHETIC_OPTIONS.nTrain, describe: 'normal training images' })
    .option('n-test-good', { type: 'number', default: DEFAULT_SYNTHETIC_OPTIONS.nTestGood, describe: 'normal test images' })
    .option('n-per-defect', { type: 'number', default: DEFAULT_SYNTHETIC_OPTIONS.nPerDefect, describe: 'test images per defect type' })
    .strict()
    .version(false)
    .wrap(100)
    .help()
    .parseAsync();

  const categories = argv.categories.split(',').map((c) => c.trim()).filter(Boolean);
  if (categories.length === 0) throw new ConfigError('--categories is empty');
  // Check every name before writing anything, so a typo does not leave a partial dataset.
  for (const c of categories) {
    if (!isSyntheticCategory(c)) {
      throw new ConfigError(`--categories: '${c}' is not a synthetic category; choose from ${SYNTHETIC_CATEGORIES.join(', ')}`);
    }
  }
  for (const category of categories) {
    const t0 = Date.now();
    const r = await generateSyntheticCategory(category, argv.out, {
      size: argv.size, seed: argv.seed, nTrain: argv['n-train'],
      nTestGood: argv['n-test-good'], nPerDefect: argv['n-per-defect'],
    });
    console.log(
      `${r.category}: ${r.counts.train} train, ${r.counts.testGood} good test, ` +
        `${r.counts.testDefective} defective test images -> ${r.dir} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
  console.log('Synthetic data: results on it are not comparable to the paper or to MVTec AD.');
}

main().catch((e: unknown) => {
  if (e instanceof AdbenchError) {
    console.error(`error: ${e.message}`);
    process.exit(2);
  }
  throw e;
});
