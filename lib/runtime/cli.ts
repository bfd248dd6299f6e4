/** `--help` for the jobs and commands: the usage text printed on stdout, exit 0, before anything else runs. */
export function exitOnHelp(usage: string | (() => string), args = process.argv.slice(2)): void {
  if (!args.includes('--help') && !args.includes('-h')) return;
  process.stdout.write(`${(typeof usage === 'string' ? usage : usage()).trim()}\n`);
  process.exit(0);
}
