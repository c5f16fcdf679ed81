import { AdbenchError } from '../src/errors.js';

/**
 * Runs a CLI's main function: a user error (AdbenchError) prints its message and exits 2 without
 * a stack trace; anything else is a bug and prints the stack. `ADBENCH_DEBUG=1` shows stacks always.
 */
export function runCli(main: () => Promise<void>): void {
  main().then(
    () => {
      // tfjs keeps no handles open, but sampler child processes might: exit explicitly.
      process.exitCode = process.exitCode ?? 0;
    },
    (err: unknown) => {
      if (err instanceof AdbenchError && !process.env.ADBENCH_DEBUG) {
        process.stderr.write(`error: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Prints `error: <message>` and exits 2: the one way CLIs report a user error. */
export function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

/** yargs `.fail()` handler: user errors and usage mistakes become `error:` lines; bugs rethrow. */
export function yargsFail(msg: string | undefined, err: Error | undefined): never {
  if (err instanceof AdbenchError) fail(err.message);
  if (err) throw err;
  fail(`${msg} (see --help)`);
}
