// Shared test helpers: every test gets a timeout so a hang fails instead of blocking CI.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_TEST_TIMEOUT_MS = 30_000;

/** Wraps a uvu test body so it fails with "timeout after N ms" instead of hanging. */
export function withTimeout<C>(ms: number, fn: (ctx: C) => unknown | Promise<unknown>): (ctx: C) => Promise<void> {
  return async (ctx: C) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(() => fn(ctx)).then(() => undefined),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms`)), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** Shorthand: the default timeout. */
export const timed = <C>(fn: (ctx: C) => unknown | Promise<unknown>) => withTimeout(DEFAULT_TEST_TIMEOUT_MS, fn);

export function tempDir(prefix = 'sheep-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The shared/ folder beside the project root (../shared from the repo). */
export function sharedDir(): string {
  return new URL('../../../shared/', import.meta.url).pathname;
}

/** Asserts that a promise rejects with an error whose message matches. */
export async function assertRejects(p: Promise<unknown>, pattern: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    const msg = String((e as Error)?.message ?? e);
    if (!pattern.test(msg)) throw new Error(`rejected with "${msg}", expected ${pattern}`);
    return e as Error;
  }
  throw new Error(`expected a rejection matching ${pattern}, but it resolved`);
}
