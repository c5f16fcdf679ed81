/**
 * Image-level evaluation of a scores file:
 *   npx tsx experiments/evaluate.ts --scores FILE.csv [--json]
 * FILE.csv has a header row with columns id,score,label (label 1 = anomalous, 0 = normal; ids may
 * be quoted; CRLF is fine). Prints AUROC, AP (scikit-learn definitions) and the ORACLE threshold:
 * the F1-maximising cut chosen on these very scores, i.e. optimistic (see src/eval/metrics).
 * With --json prints exactly one JSON object {"auroc", "ap", "oracle": {threshold, precision,
 * recall, f1}}; a metric that is undefined for the data (e.g. AUROC when all labels are equal) is
 * null and the reason goes to stderr. Errors: `error: <message>` on stderr, exit code 2.
 */
import { readFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { AdbenchError, DatasetError } from '../src/errors.js';
import { computeMetrics, parseScoresCsv } from '../src/eval/metrics/index.js';
import { fail, yargsFail } from './cli.js';


function fmt(x: number | null, digits = 4): string {
  return x === null ? 'n/a' : x.toFixed(digits);
}

function main(): void {
  const argv = yargs(hideBin(process.argv))
    .scriptName('evaluate')
    .usage('$0 --scores FILE.csv [--json]')
    .epilog(
      'Prints image-level AUROC, average precision and the oracle threshold\n' +
        '(the F1-maximising cut chosen on these test scores, hence optimistic).\n' +
        'Errors print "error: <message>" and exit with code 2.',
    )
    .option('scores', {
      type: 'string',
      demandOption: true,
      describe: 'CSV with header id,score,label (label 1 = anomalous); score >= threshold is anomalous',
    })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object instead of text' })
    .strict()
    .version(false)
    .help()
    .wrap(null)
    .fail(yargsFail)
    .parseSync();

  const file = argv.scores;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DatasetError(`cannot read scores file '${file}': ${(e as Error).message}`);
  }
  const table = parseScoresCsv(text, file);
  const r = computeMetrics({ imageScores: table.scores, imageLabels: table.labels });
  for (const note of r.notes) {
    if (note.startsWith('image')) process.stderr.write(`note: ${note}\n`);
  }
  if (argv.json) {
    process.stdout.write(JSON.stringify({ auroc: r.image.auroc, ap: r.image.ap, oracle: r.oracle }) + '\n');
    return;
  }
  const pos = table.labels.reduce((a, b) => a + b, 0);
  const o = r.oracle;
  process.stdout.write(
    [
      `scores: ${file} (${table.ids.length} images: ${pos} anomalous, ${table.ids.length - pos} normal)`,
      `AUROC: ${fmt(r.image.auroc)}`,
      `AP:    ${fmt(r.image.ap)}`,
      `oracle threshold (max F1 on these test scores; optimistic): ${o === null ? 'n/a' : String(o.threshold)}`,
      `  precision ${fmt(o?.precision ?? null)}  recall ${fmt(o?.recall ?? null)}  F1 ${fmt(o?.f1 ?? null)}`,
    ].join('\n') + '\n',
  );
}

try {
  main();
} catch (e) {
  if (e instanceof AdbenchError) fail(e.message);
  throw e;
}
