/**
 * Regenerates the paper's Tables 1-6 and A1-A4 (Markdown + CSV, every cell beside the paper's
 * value) and the figures from a folder of run folders:
 *   npx tsx experiments/report.ts RUNS_DIR [--out DIR] [--figure-images id,id] [--no-figures]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { parseList } from '../src/bench/matrix.js';
import { writeReport } from '../src/bench/report/writeReport.js';
import { runCli } from './cli.js';

runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('report.ts')
    .usage('$0 RUNS_DIR [options]\n\nReads every complete run folder under RUNS_DIR and writes report.md, tables/*.csv and figures/.')
    .command('$0 <runs>', false)
    .positional('runs', { type: 'string', describe: 'folder holding run folders (any depth), e.g. a benchmark --out' })
    .option('out', { type: 'string', describe: 'output folder (default RUNS_DIR/report)' })
    .option('figures', { type: 'boolean', default: true, describe: 'write the plots (--no-figures: tables only)' })
    .option('figure-images', { type: 'string', describe: 'test image ids for the Figure-3 grid, e.g. test/broken_large/000,test/good/001' })
    .option('figure-category', { type: 'string', describe: 'category of the Figure-3 grid (default: the first every method ran)' })
    .strict()
    .help()
    .parseAsync();
  const r = await writeReport({
    runsDir: String(argv.runs),
    out: argv.out,
    figures: argv.figures,
    figureImages: argv['figure-images'] ? parseList('--figure-images', argv['figure-images']) : undefined,
    figureCategory: argv['figure-category'],
    command: `npx tsx experiments/report.ts ${process.argv.slice(2).join(' ')}`,
  });
  process.stdout.write(`${r.records.length} runs reported${r.incomplete.length ? `, ${r.incomplete.length} incomplete skipped` : ''}; wrote ${r.files.length} files to ${r.out}:\n${r.files.map((f) => `  ${f}`).join('\n')}\n`);
});
