/**
 * The stack of module paths currently executing `Module.call`. Kept in nn (the lowest layer) so
 * that higher layers such as the MAC counter in src/energy can attribute the kernels they observe
 * to the module that ran them, without nn knowing about them.
 */
const stack: string[] = [];

export function pushModuleScope(path: string): void {
  stack.push(path);
}

export function popModuleScope(): void {
  stack.pop();
}

/** Dotted path of the innermost module running now ('' at top level). */
export function currentModulePath(): string {
  return stack.length > 0 ? stack[stack.length - 1] : '';
}

/** Class names are recorded too, for per-layer tables. */
const typeStack: string[] = [];
export function pushModuleType(t: string): void {
  typeStack.push(t);
}
export function popModuleType(): void {
  typeStack.pop();
}
export function currentModuleType(): string {
  return typeStack.length > 0 ? typeStack[typeStack.length - 1] : '';
}

/** Runs `fn` attributed to module `path` of class `type` (Module.call, and fused kernels that stand in for a module). */
export function withModuleScope<T>(path: string, type: string, fn: () => T): T {
  pushModuleScope(path);
  pushModuleType(type);
  try {
    return fn();
  } finally {
    popModuleType();
    popModuleScope();
  }
}
