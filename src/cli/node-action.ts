// The frame of every `trellisctl node …` command: the NAME checked as a key
// name, one etcd session opened and always closed, and the outcome printed
// as data (-o json|yaml) or as its sentence, with warnings on stderr.

import { checkKeyName } from '../state/keys.js';
import { EXIT_OK, type CliIO, type Invocation } from './command.js';
import { openEtcd, type EtcdSession } from './etcd-options.js';
import { formatData, isData } from './output.js';

/** What a node command did: its data form, its sentence (ending in a newline), warnings for stderr. */
export interface NodeOutcome {
  readonly result: object;
  readonly text: string;
  readonly warnings?: readonly string[];
}

/** Runs `act` on the command's NAME; a number from it is an exit code (it printed its own error). */
export async function actOnNode(inv: Invocation, io: CliIO, act: (node: string, session: EtcdSession) => Promise<NodeOutcome | number>): Promise<number> {
  const node = checkKeyName('node name', inv.positionals[0] as string);
  const session = await openEtcd(inv.options);
  try {
    const outcome = await act(node, session);
    if (typeof outcome === 'number') return outcome;
    io.stdout(isData(inv.options.output) ? formatData(inv.options.output, outcome.result) : outcome.text);
    for (const w of outcome.warnings ?? []) io.stderr(`trellisctl: warning: ${w}\n`);
    return EXIT_OK;
  } finally {
    session.close();
  }
}
