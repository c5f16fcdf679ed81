/**
 * Runs a benchmark matrix, each run an independent experiments/train.ts process with its own run
 * folder under --out:
 *   npx tsx experiments/benchmark.ts --methods patchcore,draem --categories bottle,screw \
 *     --profile cpu --seeds 0-2 --workers 2 [--shard 0/4] [--emit-slurm job.sh] [-- <train.ts args>]
 * Completed runs (metrics.json and costs.json valid) are skipped, so re-running resumes a matrix.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../src/errors.js';
import { enumerateRuns, parseList, parseMethodArgs, parseSeeds, parseShard, runFolderState, selectRuns, shardRuns } from '../src/bench/matrix.js';
import { executeMatrix } from '../src/bench/matrixExecutor.js';
import { killLiveRuns, PROJECT_ROOT, trainLauncher } from '../src/bench/launchTrain.js';
import { slurmScript } from '../src/bench/slurm.js';
import { methodNames } from '../src/registry.js';
import { runCli } from './cli.js';

runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('benchmark.ts')
    .usage('$0 --methods a,b --categories x,y [options] [-- train.ts options for every run]')
    .parserConfiguration({ 'populate--': true })
    .option('methods', { type: 'string', demandOption: true, describe: `comma-separated; available: ${methodNames().join(', ')}` })
    .option('categories', { type: 'string', demandOption: true, describe: 'comma-separated categories' })
    .option('seeds', { type: 'string', default: '0', describe: "seeds: '0,1,2' or '0-2'" })
    .option('profile', { type: 'string', describe: 'train.ts --profile for every run (default: each method\'s)' })
    .option('out', { type: 'string', default: 'runs/bench', describe: 'matrix root: run folders <out>/<method>/<category>/seed-<s>, logs, status' })
    .option('workers', { type: 'number', default: 1, describe: 'runs in parallel on this machine' })
    .option('max-attempts', { type: 'number', default: 2, describe: 'attempts per run (a failed run is retried until this many)' })
    .option('shard', { type: 'string', describe: "run only shard i of n ('i/n', 0-based, round-robin over the run list)" })
    .option('only', { type: 'string', array: true, describe: 'run only these run ids (method/category/seed-N); used by the Slurm script' })
    .option('method-args', { type: 'string', array: true, describe: "extra train.ts arguments for one method: NAME='--backbone resnet18' (repeatable)" })
    .option('list', { type: 'boolean', default: false, describe: 'print the runs (of this shard) and their state, run nothing' })
    .option('emit-slurm', { type: 'string', describe: 'write a Slurm job-array script (one task per run) to this file and exit' })
    .option('slurm-cpus', { type: 'number', default: 4, describe: '--cpus-per-task of each array task' })
    .option('slurm-mem', { type: 'string', default: '16G', describe: '--mem of each array task' })
    .option('slurm-time', { type: 'string', default: '24:00:00', describe: '--time of each array task' })
    .option('slurm-partition', { type: 'string', describe: '--partition' })
    .option('slurm-gres', { type: 'string', describe: "--gres, e.g. 'gpu:1'" })
    .option('slurm-parallel', { type: 'number', describe: 'array tasks running at once (%N)' })
    .strict()
    .help()
    .parseAsync();

  const methods = parseList('--methods', argv.methods);
  const known = methodNames();
  for (const m of methods) if (!known.includes(m)) throw new ConfigError(`--methods: unknown method '${m}'; available: ${known.join(', ')}`);
  const categories = parseList('--categories', argv.categories);
  const passthrough = ((argv as Record<string, unknown>)['--'] as string[] | undefined)?.map(String) ?? [];
  const root = resolve(argv.out);
  const all = enumerateRuns({
    methods,
    categories,
    seeds: parseSeeds(argv.seeds),
    profile: argv.profile ?? null,
    commonArgs: passthrough,
    methodArgs: parseMethodArgs(argv['method-args'], methods),
  });

  if (argv['emit-slurm']) {
    // The array task re-invokes this very command (same matrix, same train.ts arguments), minus
    // the options that only make sense here.
    const drop = new Set(['--emit-slurm', '--shard', '--workers', '--only', '--list']);
    const own: string[] = [];
    const raw = process.argv.slice(2);
    for (let i = 0; i < raw.length; i++) {
      const a = raw[i];
      if (a === '--') break;
      const name = a.split('=')[0];
      if (drop.has(name) || name.startsWith('--slurm-')) {
        if (!a.includes('=') && raw[i + 1] !== undefined && !raw[i + 1].startsWith('--')) i++;
        continue;
      }
      own.push(a);
    }
    const outIdx = own.findIndex((a) => a === '--out' || a.startsWith('--out='));
    if (outIdx >= 0) own.splice(outIdx, own[outIdx].includes('=') ? 1 : 2);
    const script = slurmScript({
      runs: all,
      benchmarkArgv: ['node', '--import', 'tsx', join(PROJECT_ROOT, 'experiments', 'benchmark.ts'), ...own, '--out', root],
      trainArgs: passthrough,
      projectDir: PROJECT_ROOT,
      root,
      maxParallel: argv['slurm-parallel'] ?? null,
      cpusPerTask: argv['slurm-cpus'],
      memory: argv['slurm-mem'],
      time: argv['slurm-time'],
      partition: argv['slurm-partition'] ?? null,
      gres: argv['slurm-gres'] ?? null,
    });
    const file = resolve(argv['emit-slurm']);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, script);
    chmodSync(file, 0o755);
    process.stdout.write(`wrote ${file}: Slurm job array of ${all.length} runs; submit with: mkdir -p ${root}/logs && sbatch ${file}\n`);
    return;
  }

  const shard = argv.shard ? parseShard(argv.shard) : null;
  const runs = selectRuns(shard ? shardRuns(all, shard) : all, argv.only);
  const shardLabel = shard ? `${shard.index}/${shard.count}` : null;
  if (argv.list) {
    for (const r of runs) process.stdout.write(`${r.id}\t${runFolderState(join(root, r.id))}\n`);
    return;
  }
  const statusName = argv.only?.length
    ? `bench-status.only-${argv.only.join('+').replace(/\//g, '__')}.json`
    : shard
      ? `bench-status.shard-${shard.index}-of-${shard.count}.json`
      : 'bench-status.json';
  const stop = (signal: NodeJS.Signals): void => {
    process.stderr.write(`[bench] ${signal}: stopping the running train.ts processes; re-run the same command to resume\n`);
    killLiveRuns('SIGTERM');
    process.exit(130);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.stderr.write(`[bench] ${runs.length} runs${shardLabel ? ` (shard ${shardLabel} of ${all.length})` : ''} under ${root}, ${argv.workers} worker(s)\n`);
  const outcome = await executeMatrix({
    root,
    runs,
    launch: trainLauncher(),
    workers: argv.workers,
    maxAttempts: argv['max-attempts'],
    statusPath: join(root, statusName),
    shardLabel,
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(
    `${outcome.completed.length} completed, ${outcome.skipped.length} skipped (already complete), ${outcome.failed.length} failed; status: ${join(root, statusName)}\n`,
  );
  for (const id of outcome.failed) {
    const st = outcome.status.runs.find((r) => r.id === id);
    process.stdout.write(`  FAILED ${id} after ${st?.attempts} attempts (last exit ${st?.lastExit}); log: ${st?.log}\n`);
  }
  if (outcome.failed.length > 0) process.exitCode = 1;
});
