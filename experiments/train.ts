/**
 * Train and evaluate one method on one category:
 *   npx tsx experiments/train.ts patchcore bottle [--profile cpu] [--data DIR] ...
 * Several seeds with mean ± sd: experiments/seeds.ts (same options).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { resolve } from 'node:path';
import { ConfigError } from '../src/errors.js';
import { defaultRunDir } from '../src/train/runFolder.js';
import { runCli } from './cli.js';
import { formatRunSummary, runSeed, setupTraining, withTrainOptions } from './trainOptions.js';

runCli(async () => {
  const argv = await withTrainOptions(
    yargs(hideBin(process.argv))
      .scriptName('train.ts')
      .usage('$0 <method> <category> [options]\n\nTrains and evaluates a method; writes a run folder with config, metrics, scores, report and heatmaps.')
      .command('$0 <method> <category>', false),
  )
    .option('seed', { type: 'number', default: 0, describe: 'drives splits, augmentation and initialisation' })
    .option('out', { type: 'string', describe: 'run folder (default runs/<method>/<category>/<timestamp>)' })
    .strict()
    .help()
    .parseAsync();

  if (argv.resume && !argv.out) throw new ConfigError('--resume needs --out naming the run folder to continue');
  const setup = await setupTraining(argv);
  const runDir = resolve(argv.out ?? defaultRunDir(setup.method.name, setup.category));
  const result = await runSeed(setup, argv.seed, runDir);
  process.stdout.write(formatRunSummary(setup, result));
  result.detector.dispose();
});
