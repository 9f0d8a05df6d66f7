// `trellisctl topology …`: commands on topology files.
//
//   validate FILE           check a file; report every problem, one per line
//   render FILE [-o FMT]    print the resolved topology (carved prefixes included)
// Both read the file through CliIO ("-" is standard input) and never touch
// etcd. Problems go to stderr as `FILE: PATH: message`; exit 1 when the file
// is invalid or unreadable.

import { formatPrefix } from '../core/cidr.js';
import { allSubnets } from '../core/topology.js';
import { EXIT_OK, type CommandGroup, type LeafCommand } from './command.js';
import { documentOutputOption, formatData, isData } from './output.js';
import { renderTopologyTable, topologyToJSON } from './topology-render.js';
import { displayName, loadTopologyFile } from './topology-file.js';
import { applyCommand, showCommand } from './topology-store-cmd.js';

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export const validateCommand: LeafCommand = {
  kind: 'command',
  name: 'validate',
  summary: 'check a topology file and report every problem in it',
  args: 'FILE',
  positionals: { min: 1, max: 1 },
  options: {},
  description:
    'Checks FILE (YAML or JSON; "-" reads standard input) against every rule of the\n' +
    'topology file and carves the pod prefixes it leaves out. Prints a one-line\n' +
    'summary and exits 0 when the file is valid; otherwise prints one line per\n' +
    'problem to stderr as "FILE: PATH: message" and exits 1.',
  examples: ['trellisctl topology validate examples/topology.yaml'],
  async run(inv, io) {
    const file = inv.positionals[0] as string;
    const topology = await loadTopologyFile(io, file);
    if (typeof topology === 'number') return topology;
    io.stdout(
      `${displayName(file)}: ok (${plural(topology.zones.length, 'zone')}, ` +
        `${plural(allSubnets(topology).length, 'subnet')}, network ${formatPrefix(topology.network)})\n`,
    );
    return EXIT_OK;
  },
};

export const renderCommand: LeafCommand = {
  kind: 'command',
  name: 'render',
  summary: 'print the resolved topology, with every pod prefix',
  args: 'FILE',
  positionals: { min: 1, max: 1 },
  options: {
    output: documentOutputOption,
  },
  description:
    'Validates FILE like "validate", then prints every subnet with its host CIDR,\n' +
    'its pod prefix (marked "(carved)" when Trellis chose it), its route table and\n' +
    'the number of blocks its pod prefix holds. "-o json" prints the same as JSON:\n' +
    '{network, blockSize, nodeHomeSize, subnetSize, zones: [{name, subnets: [{id,\n' +
    'cidr, podPrefix, podPrefixExplicit, routeTable}]}]} (routeTable only when set).',
  examples: [
    'trellisctl topology render examples/topology.yaml',
    'trellisctl topology render examples/topology.yaml -o json',
  ],
  async run(inv, io) {
    const topology = await loadTopologyFile(io, inv.positionals[0] as string);
    if (typeof topology === 'number') return topology;
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, topologyToJSON(topology)) : renderTopologyTable(topology));
    return EXIT_OK;
  },
};

export const topologyCommand: CommandGroup = {
  kind: 'group',
  name: 'topology',
  summary: 'validate and render topology files',
  description:
    'Work with topology files: the pod network, its zones and subnets, and the\n' +
    'pod prefix of every subnet (written in the file or carved by Trellis), and\n' +
    'with the topology stored in etcd that every trellisd follows.',
  commands: [validateCommand, renderCommand, applyCommand, showCommand],
  examples: [
    'trellisctl topology validate examples/topology.yaml',
    'trellisctl topology render examples/topology.yaml -o json',
  ],
};
