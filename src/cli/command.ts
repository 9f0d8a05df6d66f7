// The trellisctl command tree and its dispatcher.
//
// A command is either a group (`topology`, later `vpc`, `nodes`…) holding
// further commands, or a leaf that declares its options and positional
// arguments and runs. Each command lives in its own file and is attached to
// the root in main.ts; the dispatcher alone handles help, usage errors and
// exit codes, so every command behaves the same way:
//   0  success;  1  the command failed (invalid input, unreadable file…);
//   2  usage error (unknown command or option, bad option value, wrong
//      number of arguments), with the usage on stderr.
// Commands never call process.exit and never write to the console directly:
// they get a CliIO, so they run in-process in tests.

import { describeError } from '../errors.js';
import { helpText, parseLeafArgs, usageText, UsageError } from './args.js';

export type { CliIO, CommandGroup, CommandNode, Invocation, LeafCommand, OptionSpec, OptionValues } from './spec.js';
import type { CliIO, CommandGroup, CommandNode, Invocation, LeafCommand } from './spec.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const isHelp = (arg: string): boolean => arg === '-h' || arg === '--help';

function usageError(io: CliIO, path: readonly string[], node: CommandNode, message: string): number {
  io.stderr(`${path[0]}: ${message}\n${usageText(path, node)}`);
  return EXIT_USAGE;
}

/** Runs the command named by `argv` under `root`; resolves with the exit code. */
export async function dispatch(root: CommandGroup, argv: readonly string[], io: CliIO): Promise<number> {
  let node: CommandNode = root;
  const path: string[] = [root.name];
  let rest = [...argv];
  while (node.kind === 'group') {
    const group: CommandGroup = node;
    const word = rest[0];
    if (word === undefined) return usageError(io, path, group, `missing command after "${path.join(' ')}"`);
    if (isHelp(word)) {
      io.stdout(helpText(path, group));
      return EXIT_OK;
    }
    if (word.startsWith('-')) return usageError(io, path, group, `unknown option ${JSON.stringify(word)}`);
    const next = group.commands.find((c) => c.name === word);
    if (next === undefined) {
      return usageError(io, path, group, `unknown command ${JSON.stringify(word)} for "${path.join(' ')}"`);
    }
    node = next;
    path.push(word);
    rest = rest.slice(1);
  }
  const leaf: LeafCommand = node;
  const beforeDashes = rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'));
  if (beforeDashes.some(isHelp)) {
    io.stdout(helpText(path, leaf));
    return EXIT_OK;
  }
  let invocation: Invocation;
  try {
    invocation = { path, ...parseLeafArgs(leaf, rest) };
  } catch (err) {
    if (err instanceof UsageError) return usageError(io, path, leaf, err.message);
    throw err;
  }
  try {
    return await leaf.run(invocation, io);
  } catch (err) {
    io.stderr(`${path[0]}: ${describeError(err)}\n`);
    return EXIT_FAILURE;
  }
}
