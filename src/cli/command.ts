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
// The root also answers `--version` and `help [COMMAND...]` (the same text as
// `COMMAND --help`); a mistyped command or option gets a "did you mean".

import { describeError } from '../errors.js';
import { didYouMean } from '../core/suggest.js';
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

export interface DispatchOptions {
  /** Printed as `NAME VERSION` by `NAME --version`. */
  readonly version?: string;
  /** Turns a command's failure into the message after `NAME: ` (default describeError). */
  readonly describe?: (err: unknown) => string;
}

function unknownCommand(group: CommandGroup, path: readonly string[], word: string, extra: readonly string[] = []): string {
  const names = [...group.commands.map((c) => c.name), ...extra];
  return `unknown command ${JSON.stringify(word)} for "${path.join(' ')}"${didYouMean(word, names)}`;
}

/** `help [COMMAND...]`: the help of the named command, as `COMMAND --help` prints it. */
function help(root: CommandGroup, words: readonly string[], io: CliIO): number {
  let node: CommandNode = root;
  const path: string[] = [root.name];
  for (const word of words) {
    if (node.kind !== 'group') return usageError(io, path, node, `"${path.join(' ')}" has no subcommand ${JSON.stringify(word)}`);
    const next: CommandNode | undefined = node.commands.find((c) => c.name === word);
    if (next === undefined) return usageError(io, path, node, unknownCommand(node, path, word));
    node = next;
    path.push(word);
  }
  io.stdout(helpText(path, node));
  return EXIT_OK;
}

/** Runs the command named by `argv` under `root`; resolves with the exit code. */
export async function dispatch(root: CommandGroup, argv: readonly string[], io: CliIO, opts: DispatchOptions = {}): Promise<number> {
  let node: CommandNode = root;
  const path: string[] = [root.name];
  let rest = [...argv];
  while (node.kind === 'group') {
    const group: CommandGroup = node;
    const atRoot = group === root;
    const word = rest[0];
    if (word === undefined) return usageError(io, path, group, `missing command after "${path.join(' ')}"`);
    if (isHelp(word)) {
      io.stdout(helpText(path, group));
      return EXIT_OK;
    }
    if (atRoot && word === '--version' && opts.version !== undefined) {
      io.stdout(`${root.name} ${opts.version}\n`);
      return EXIT_OK;
    }
    if (atRoot && word === 'help') return help(root, rest.slice(1), io);
    if (word.startsWith('-')) {
      const known = atRoot && opts.version !== undefined ? ['--help', '--version'] : ['--help'];
      return usageError(io, path, group, `unknown option ${JSON.stringify(word)}${didYouMean(word, known)}`);
    }
    const next = group.commands.find((c) => c.name === word);
    if (next === undefined) return usageError(io, path, group, unknownCommand(group, path, word, atRoot ? ['help'] : []));
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
    io.stderr(`${path[0]}: ${(opts.describe ?? describeError)(err)}\n`);
    return EXIT_FAILURE;
  }
}
