// trellisctl's root: the command tree and main(argv, io).
//
// To add a command, write it in its own file (a LeafCommand, or a
// CommandGroup of them, as topology-cmd.ts does) and list it in `root` below;
// help, usage errors and exit codes come from the dispatcher in command.ts.
// main never throws and never exits the process: it resolves with the exit code.

import { readFile } from 'node:fs/promises';
import { describeError } from '../errors.js';
import { VERSION } from '../version.js';
import { describeCommandError } from './etcd-options.js';
import { dispatch, EXIT_FAILURE, type CliIO, type CommandGroup } from './command.js';
import { topologyCommand } from './topology-cmd.js';
import { ipamCommand } from './ipam-cmd.js';
import { blocksCommand, routesCommand } from './state-cmd.js';
import { nodesCommand } from './nodes-cmd.js';
import { vpcCommand } from './vpc-cmd.js';
import { rbacCommand } from './rbac-cmd.js';
import { nodeCommand } from './node-cmd.js';
import { bgpCommand } from './bgp-cmd.js';

export const root: CommandGroup = {
  kind: 'group',
  name: 'trellisctl',
  summary: 'inspect and manage a Trellis cluster',
  description:
    'trellisctl inspects and manages Trellis: the topology of pod prefixes, zones\n' +
    'and subnets that trellisd advertises routes for, and the live state in etcd\n' +
    '(nodes, block claims, pod address allocations, advertisements, VPC\n' +
    'route-table entries).',
  commands: [topologyCommand, nodesCommand, nodeCommand, blocksCommand, ipamCommand, routesCommand, vpcCommand, bgpCommand, rbacCommand],
  examples: ['trellisctl topology validate examples/topology.yaml', 'trellisctl topology apply examples/topology.yaml', 'trellisctl routes -o json'],
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The real process's IO. */
export function nodeIO(): CliIO {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    readFile: (path) => (path === '-' ? readStdin() : readFile(path, 'utf8')),
  };
}

/** Runs trellisctl with `argv` (without "node" and the script); resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO = nodeIO()): Promise<number> {
  try {
    return await dispatch(root, argv, io, { version: VERSION, describe: describeCommandError });
  } catch (err) {
    io.stderr(`trellisctl: ${describeError(err)}\n`);
    return EXIT_FAILURE;
  }
}
