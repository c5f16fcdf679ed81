/**
 * Train and evaluate one method on one category for several seeds, and aggregate:
 *   npx tsx experiments/seeds.ts draem bottle --seeds 5 [train.ts options] [--out DIR]
 * Each seed is the run train.ts makes with `--seed k --out DIR/seed-k` (same options, same code
 * path: experiments/trainOptions.ts). A seed whose metrics.json exists is not run again, so an
 * interrupted sweep continues where it stopped. DIR/seeds.json and DIR/seeds.md hold mean ± sd
 * (n − 1), min and max of every metric, of the wall time and of the training CPU time, and the
 * per-seed rows.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError } from '../src/errors.js';
import { parseSeedList, renderSeedsMarkdown, seedRowFromRun, summarizeSeeds, trainCpuSeconds, type RunTimes, type SeedRow } from '../src/eval/seedStats.js';
import { defaultRunDir, writeFileAtomic, writeJsonAtomic } from '../src/train/runFolder.js';
import { runCli } from './cli.js';
import { formatRunSummary, log, runSeed, setupTraining, withTrainOptions } from './trainOptions.js';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message} (delete the seed folder to run it again)`);
  }
}

function timesOf(runDir: string): RunTimes {
  const timing = join(runDir, 'timing.json');
  const costs = join(runDir, 'costs.json');
  const wall = existsSync(timing) ? (readJson(timing) as { wallTimeS?: unknown }).wallTimeS : null;
  return { wallTimeS: typeof wall === 'number' ? wall : null, trainCpuS: existsSync(costs) ? trainCpuSeconds(readJson(costs)) : null };
}

runCli(async () => {
  const argv = await withTrainOptions(
    yargs(hideBin(process.argv))
      .scriptName('seeds.ts')
      .usage('$0 <method> <category> --seeds N|a,b,c [options]\n\nRuns train.ts for several seeds (one run folder each) and writes seeds.json and seeds.md: mean ± sd, min and max of every metric.')
      .command('$0 <method> <category>', false),
  )
    .option('seeds', { type: 'string', default: '5', describe: "seed count N (seeds 0..N-1) or a comma list, e.g. '0,3,7'" })
    .option('out', { type: 'string', describe: 'sweep folder holding seed-<k>/ run folders (default runs/<method>/<category>/seeds-<timestamp>)' })
    .strict()
    .help()
    .parseAsync();

  const seeds = parseSeedList(String(argv.seeds));
  if (!seeds) throw new ConfigError(`--seeds '${argv.seeds}': expected a count >= 1 or a comma list of distinct non-negative integers (e.g. 5 or 0,3,7)`);
  if (argv.resume && !argv.out) throw new ConfigError('--resume needs --out naming the sweep folder to continue');
  const setup = await setupTraining(argv);
  const outDir = resolve(argv.out ?? defaultRunDir(setup.method.name, setup.category).replace(/[^/\\]+$/, (t) => `seeds-${t}`));

  const rows: SeedRow[] = [];
  let dataSource = 'real';
  for (const seed of seeds) {
    const runDir = join(outDir, `seed-${seed}`);
    const metricsPath = join(runDir, 'metrics.json');
    if (existsSync(metricsPath)) {
      log(`[seeds] seed ${seed}: ${metricsPath} exists, not run again`);
    } else {
      log(`[seeds] seed ${seed} (${rows.length + 1} of ${seeds.length}) -> ${runDir}`);
      const result = await runSeed(setup, seed, runDir);
      process.stdout.write(formatRunSummary(setup, result));
      result.detector.dispose();
    }
    const metrics = readJson(metricsPath) as { dataSource?: unknown };
    if (metrics.dataSource === 'synthetic') dataSource = 'synthetic';
    rows.push(seedRowFromRun(seed, runDir, metrics, timesOf(runDir)));
  }

  const summary = summarizeSeeds(rows);
  const command = `npx tsx experiments/seeds.ts ${process.argv.slice(2).join(' ')}`;
  const header = { method: setup.method.displayName, category: setup.category, profile: setup.profile, dataSource, command };
  writeJsonAtomic(join(outDir, 'seeds.json'), { ...header, methodName: setup.method.name, backend: setup.backend.active, ...summary });
  const md = renderSeedsMarkdown(header, summary);
  writeFileAtomic(join(outDir, 'seeds.md'), md);
  process.stdout.write(`\n${md}\nwritten: ${join(outDir, 'seeds.json')}, ${join(outDir, 'seeds.md')}\n`);
});
