/**
 * Errors a user can act on. Every message names the file, option or value at fault and says what
 * to do; CLIs print `message` without a stack trace (see experiments/cli.ts).
 */
export class AdbenchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A dataset folder, image or mask is missing, unreadable or inconsistent. */
export class DatasetError extends AdbenchError {}

/** A command-line option or config value is invalid (unknown method, category, profile...). */
export class ConfigError extends AdbenchError {}

/** Weights are missing, corrupt or do not match the network. */
export class WeightsError extends AdbenchError {}

/** Training diverged (NaN/Inf loss) or cannot continue. */
export class TrainingError extends AdbenchError {}

/** A tfjs backend could not be initialised. */
export class BackendError extends AdbenchError {}
