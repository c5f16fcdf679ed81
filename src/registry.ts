import { ConfigError } from './errors.js';
import type { BaseMethodConfig, MethodDefinition } from './models/method.js';
import { patchcoreMethod } from './models/patchcore/index.js';
import { draemMethod } from './models/draem/index.js';
import { riadMethod } from './models/riad/index.js';
import { cutpasteMethod } from './models/cutpaste/index.js';
import { glassMethod } from './models/glass/index.js';
import { patchsvddMethod } from './models/patchsvdd/index.js';

/**
 * Method name -> definition, read by every CLI (train, costs, bench). A method joins the project
 * by adding one line here.
 */
const METHODS: readonly MethodDefinition<BaseMethodConfig>[] = [patchcoreMethod, draemMethod, riadMethod, cutpasteMethod, glassMethod, patchsvddMethod];

/** The paper's ten methods, for messages about those not implemented yet. */
export const PAPER_METHODS = ['patchcore', 'dinomaly', 'glass', 'draem', 'diffusionad', 'ddad', 'cutpaste', 'riad', 'patchsvdd', 'mspba'] as const;

export function methodNames(): string[] {
  return METHODS.map((m) => m.name);
}

export function getMethod(name: string): MethodDefinition<BaseMethodConfig> {
  const m = METHODS.find((d) => d.name === name.toLowerCase());
  if (m) return m;
  const planned = (PAPER_METHODS as readonly string[]).includes(name.toLowerCase());
  throw new ConfigError(
    planned
      ? `method '${name}' is one of the paper's methods but is not implemented yet; available: ${methodNames().join(', ')}`
      : `unknown method '${name}'; available: ${methodNames().join(', ')}`,
  );
}
