/**
 * Table 6 parameter and GMAC rows, computed from the networks themselves:
 *   npx tsx experiments/costs.ts [methods...] [--json] [--input-size N] [--backend wasm|cpu]
 * For each method (default: every registered method with a cost spec, MethodDefinition.costSpec) builds its networks, runs the pass the
 * paper counted at batch 1 under the kernel-level MAC counter (src/energy/macs.ts) and prints
 * parameters (run, and under the paper's inclusion rule) and GMAC (true MACs and the ptflops
 * convention the paper used), with ratios to the paper. --json prints exactly one array of
 * {"method","paramsM","paramsMPaperRule","gmac","gmacPtflops","paperParamsM","paperGmac","note"}.
 * Errors: `error: <message>` on stderr, exit code 2.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.js';
import { computeCostRow, formatCostRows, toJsonRow, type CostRowDetail, type MethodCostSpec } from '../src/energy/costsTable.js';
import { ConfigError } from '../src/errors.js';
import { getMethod, methodNames } from '../src/registry.js';
import { runCli, yargsFail } from './cli.js';

/** Registered methods that have a Table 6 row. */
const costed = (): string[] => methodNames().filter((n) => getMethod(n).costSpec !== undefined);

function costSpecOf(name: string): MethodCostSpec {
  const spec = getMethod(name).costSpec; // unknown / planned methods: ConfigError naming the available ones
  if (!spec) throw new ConfigError(`method '${name}' has no cost spec yet (MethodDefinition.costSpec); methods with one: ${costed().join(', ')}`);
  return spec;
}

async function main(): Promise<void> {
  const argv = yargs(hideBin(process.argv))
    .scriptName('costs')
    .command('$0 [methods..]', 'print Table 6 parameter and GMAC rows', (y) =>
      y.positional('methods', { type: 'string', array: true, describe: 'registered method names (default: all)' }),
    )
    .epilog(`Registered methods: ${costed().join(', ')}.\nErrors print "error: <message>" and exit with code 2.`)
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON array instead of a table' })
    .option('input-size', { type: 'number', describe: "override each method's input side (default: the paper's)" })
    .option('backend', { type: 'string', choices: ['wasm', 'cpu'], default: 'wasm', describe: 'tfjs backend that runs the counted pass' })
    .strict()
    .version(false)
    .help()
    .wrap(null)
    .fail(yargsFail)
    .parseSync();

  const given = (argv.methods as string[] | undefined) ?? [];
  const names = given.length > 0 ? given : costed();
  const specs = names.map(costSpecOf); // unknown names fail before any network is built
  await initBackend(argv.backend as 'wasm' | 'cpu');
  const rows: CostRowDetail[] = [];
  for (const spec of specs) rows.push(await computeCostRow(spec, argv['input-size'] ?? spec.inputSize));
  if (argv.json) process.stdout.write(JSON.stringify(rows.map(toJsonRow)) + '\n');
  else process.stdout.write(formatCostRows(rows) + '\n');
}

runCli(main);
