/**
 * `--help` for every script: its usage is the comment at its head (one place for it), printed as plain text.
 * Called right after the imports, before the script does anything.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { exitOnHelp } from '#lib/runtime';

/** The leading block comment of a source file, without its `/**`, ` * ` and `*\/` decoration. */
export function headerOf(source: string): string | undefined {
  const match = /^(?:#![^\n]*\n)?\s*\/\*\*([\s\S]*?)\*\//.exec(source);
  if (!match?.[1]) return undefined;
  return match[1]
    .split('\n')
    .map((line) => line.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

/** Prints the head comment of the script at `moduleUrl` and exits 0 when `--help` or `-h` is among its arguments. */
export function helpFromHeader(moduleUrl: string, args = process.argv.slice(2)): void {
  exitOnHelp(() => headerOf(readFileSync(fileURLToPath(moduleUrl), 'utf8')) ?? 'No usage is written here.', args);
}
