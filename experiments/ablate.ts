/**
 * Trains one method with each synthetic-anomaly strategy of the registry, same seeds, and writes a
 * table of metrics and costs per strategy:
 *   npx tsx experiments/ablate.ts draem bottle --strategies draem,perlin,cutpaste --seeds 0-2 [-- <train.ts args>]
 * Runs are benchmark runs (one train.ts process each, resumable: finished ones are skipped).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ablationCsv, ablationMarkdown, ablationRows, strategyVariants } from '../src/bench/ablation.js';
import { enumerateRuns, parseList, parseSeeds } from '../src/bench/matrix.js';
import { executeMatrix } from '../src/bench/matrixExecutor.js';
import { killLiveRuns, trainLauncher } from '../src/bench/launchTrain.js';
import { scanRuns } from '../src/bench/report/runRecords.js';
import { getMethod } from '../src/registry.js';
import { runCli } from './cli.js';

runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('ablate.ts')
    .usage('$0 <method> <category> [--strategies a,b,...] [options] [-- train.ts options for every run]')
    .parserConfiguration({ 'populate--': true })
    .command('$0 <method> <category>', false)
    .positional('method', { type: 'string' })
    .positional('category', { type: 'string' })
    .option('strategies', { type: 'string', describe: "comma-separated registry strategies ('none' for methods without synthetic anomalies); default: every strategy the method can take" })
    .option('seeds', { type: 'string', default: '0', describe: "seeds: '0,1,2' or '0-2' (the same for every strategy)" })
    .option('profile', { type: 'string', describe: 'train.ts --profile' })
    .option('out', { type: 'string', default: 'runs/ablate', describe: 'root: run folders <out>/<method>/<category>/<strategy>/seed-<s>' })
    .option('workers', { type: 'number', default: 1, describe: 'runs in parallel' })
    .option('max-attempts', { type: 'number', default: 2, describe: 'attempts per run' })
    .strict()
    .help()
    .parseAsync();
  const method = getMethod(String(argv.method));
  const category = String(argv.category);
  const requested = argv.strategies ? parseList('--strategies', argv.strategies) : null;
  const variants = strategyVariants(method, requested, argv.profile);
  const passthrough = ((argv as Record<string, unknown>)['--'] as string[] | undefined)?.map(String) ?? [];
  const root = resolve(argv.out);
  const runs = enumerateRuns({ methods: [method.name], categories: [category], seeds: parseSeeds(argv.seeds), profile: argv.profile ?? null, commonArgs: passthrough, variants });
  process.on('SIGINT', () => {
    killLiveRuns();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    killLiveRuns();
    process.exit(130);
  });
  process.stderr.write(`[ablate] ${method.name} on ${category}: strategies ${variants.map((v) => v.name).join(', ')}; ${runs.length} runs under ${root}\n`);
  const outcome = await executeMatrix({
    root, runs, launch: trainLauncher(), workers: argv.workers, maxAttempts: argv['max-attempts'],
    statusPath: join(root, method.name, category, 'ablation-status.json'), log: (l) => process.stderr.write(`${l}\n`),
  });
  const names = variants.map((v) => v.name);
  const records = scanRuns(root).records.filter((r) => r.method === method.name && r.category === category && r.variant !== null && names.includes(r.variant));
  const rows = ablationRows(records, names);
  const base = join(root, method.name, category);
  const md = ablationMarkdown({ method: method.displayName, category, rows, energyEstimated: records.some((r) => r.costs?.energyEstimated), command: `npx tsx experiments/ablate.ts ${process.argv.slice(2).join(' ')}` });
  writeFileSync(join(base, 'ablation.md'), md);
  writeFileSync(join(base, 'ablation.csv'), ablationCsv(rows));
  process.stdout.write(`${md}\nwrote ${join(base, 'ablation.md')} and ablation.csv; ${outcome.completed.length} completed, ${outcome.skipped.length} skipped, ${outcome.failed.length} failed\n`);
  for (const id of outcome.failed) process.stdout.write(`  FAILED ${id}\n`);
  if (outcome.failed.length) process.exitCode = 1;
});
