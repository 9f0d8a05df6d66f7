// `--help` for the benchmarks: prints the opening comment of the running
// benchmark's own source (what it measures, how to run it, its options and
// environment) and exits 0 before anything is started. One text, so the help
// and the file's header cannot disagree.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The leading `//` comment block of a source file, without the markers. */
export function headerComment(source: string): string {
  const lines: string[] = [];
  for (const line of source.split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return `${lines.join('\n').trim()}\n`;
}

/** With --help or -h among the arguments: print the benchmark's header and exit 0. */
export function exitOnHelp(moduleUrl: string, argv: readonly string[] = process.argv.slice(2)): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  process.stdout.write(headerComment(readFileSync(fileURLToPath(moduleUrl), 'utf8')));
  process.exit(0);
}
