// Reading a topology file for trellisctl: through CliIO ("-" is standard
// input), with read failures and every validation problem reported on stderr
// as `FILE: PATH: message`.

import type { Topology } from '../core/topology.js';
import { formatIssues, parseTopology } from '../core/topology-parse.js';
import { EXIT_FAILURE, type CliIO } from './command.js';

/** How a file name is shown in messages. */
export function displayName(file: string): string {
  return file === '-' ? '<stdin>' : file;
}

function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return (err as Error).message;
  }
}

/**
 * Reads and parses a topology file; on failure prints the problems to stderr
 * and returns the exit code instead of a topology.
 */
export async function loadTopologyFile(io: CliIO, file: string): Promise<Topology | number> {
  const name = displayName(file);
  let text: string;
  try {
    text = await io.readFile(file);
  } catch (err) {
    io.stderr(`${name}: cannot read the topology file: ${readFailure(err)}\n`);
    return EXIT_FAILURE;
  }
  const result = parseTopology(text, name);
  if ('errors' in result) {
    io.stderr(formatIssues(name, result.errors).map((l) => `${l}\n`).join(''));
    return EXIT_FAILURE;
  }
  return result.topology;
}
