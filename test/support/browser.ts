/**
 * A real browser for tests: Debian's Chromium (installed with apt-get when missing and we are root), driven by
 * playwright-core, which downloads nothing. Without it the browser tests are skipped, and the reason printed.
 */
import { describe } from '@jest/globals';
import { type Browser, chromium } from 'playwright-core';
import { ensureCommand } from '../../scripts/processes.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** Why there is no browser here, or undefined when there is one (installing it first if we may). */
export function browserProblem(): string | undefined {
  try {
    ensureCommand('chromium', 'chromium');
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export function launchBrowser(): Promise<Browser> {
  // Root (CI here) cannot use Chromium's user-namespace sandbox; the pages are our own, on loopback.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** `describe` when there is a browser here, else `describe.skip`, with the reason printed once per file. */
export function describeWithBrowser(): typeof describe | typeof describe.skip {
  const problem = browserProblem();
  if (problem !== undefined) console.warn(`browser tests skipped: ${problem}`);
  return problem === undefined ? describe : describe.skip;
}
