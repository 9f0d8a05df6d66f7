// Command-line arguments of a leaf command, and the help text of any command.
//
// parseLeafArgs turns the words after a command name into option values and
// positional arguments using node:util parseArgs in strict mode; every
// mistake becomes a UsageError with a message meant for the user (exit 2).
// helpText renders usage, description, options or subcommands, and examples
// from the command's own declaration, so help never drifts from behaviour.

import { parseArgs } from 'node:util';
import type { CommandNode, LeafCommand, OptionValues } from './spec.js';
import { formatTable } from './output.js';
import { didYouMean } from '../core/suggest.js';


export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parses `argv` against the leaf's options; throws UsageError on any mistake. */
export function parseLeafArgs(leaf: LeafCommand, argv: readonly string[]): { positionals: string[]; options: OptionValues } {
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, spec] of Object.entries(leaf.options)) {
    config[name] = spec.short === undefined ? { type: spec.type } : { type: spec.type, short: spec.short };
  }
  checkOptionNames(leaf, argv);
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: config, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs explains itself in its first sentence; the rest is advice about "--".
    const message = ((err as Error).message.split('. ')[0] ?? '').replaceAll("'", '"');
    throw new UsageError(message.charAt(0).toLowerCase() + message.slice(1));
  }
  const options: Record<string, string | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(leaf.options)) {
    if (spec.aliasOf !== undefined) continue;
    const aliases = Object.entries(leaf.options).filter(([, a]) => a.aliasOf === name).map(([alias]) => alias);
    const value = parsed.values[name] ?? aliases.map((a) => parsed.values[a]).find((v) => v !== undefined);
    if (typeof value === 'string' && spec.choices !== undefined && !spec.choices.includes(value)) {
      throw new UsageError(
        `invalid value ${JSON.stringify(value)} for ${optionLabel(name, spec)}: expected ${orList(spec.choices)}`,
      );
    }
    options[name] = value ?? spec.default;
  }
  const { min, max } = leaf.positionals;
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`missing argument: expected ${leaf.args}`);
  if (n > max) {
    const extra = parsed.positionals.slice(max).map((a) => JSON.stringify(a)).join(' ');
    throw new UsageError(`unexpected argument${n - max > 1 ? 's' : ''} ${extra}`);
  }
  return { positionals: parsed.positionals, options };
}

/** "a", "a or b", "a, b or c". */
function orList(words: readonly string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/** Unknown long options, found before parseArgs so the message can suggest the intended one. */
function checkOptionNames(leaf: LeafCommand, argv: readonly string[]): void {
  const names = [...Object.keys(leaf.options), 'help'];
  for (const arg of argv) {
    if (arg === '--') return;
    if (!arg.startsWith('--')) continue;
    const name = arg.slice(2).split('=')[0] ?? '';
    if (names.includes(name)) continue;
    const visible = names.filter((n) => leaf.options[n]?.aliasOf === undefined).map((n) => `--${n}`);
    throw new UsageError(`unknown option ${JSON.stringify(`--${name}`)}${didYouMean(`--${name}`, visible)}`);
  }
}

function optionLabel(name: string, spec: { short?: string }): string {
  return spec.short === undefined ? `--${name}` : `-${spec.short}/--${name}`;
}

function section(title: string, lines: readonly string[]): string {
  return lines.length === 0 ? '' : `\n${title}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

function usageLine(path: readonly string[], node: CommandNode): string {
  const name = path.join(' ');
  if (node.kind === 'group') return `Usage: ${name} COMMAND [ARGS...]`;
  return `Usage: ${name}${Object.keys(node.options).length > 0 ? ' [options]' : ''}${node.args ? ` ${node.args}` : ''}`;
}

/** The commands of a group, or the options of a leaf, as help lines. */
function listing(node: CommandNode): string {
  if (node.kind === 'group') return section('Commands', formatTable(undefined, node.commands.map((c) => [c.name, c.summary])));
  const rows = Object.entries(node.options).filter(([, spec]) => spec.aliasOf === undefined).map(([long, spec]) => {
    const flag = `${spec.short === undefined ? '    ' : `-${spec.short}, `}--${long}${spec.valueName ? ` ${spec.valueName}` : ''}`;
    return [flag, `${spec.doc}${spec.default === undefined ? '' : ` (default: ${spec.default})`}`];
  });
  return section('Options', formatTable(undefined, [...rows, ['-h, --help', 'show this help']]));
}

/** The full help of a command (--help): usage, description, commands or options, examples. */
export function helpText(path: readonly string[], node: CommandNode): string {
  const name = path.join(' ');
  const root = path.length === 1 ? `Run "${name} help COMMAND" for the same, and "${name} --version" for the version.\n` : '';
  const more = node.kind === 'group' ? `\nRun "${name} COMMAND --help" for the options of a command.\n${root}` : '';
  return `${usageLine(path, node)}\n\n${node.description}\n${listing(node)}${more}${section('Examples', node.examples)}`;
}

/** The short usage printed after a usage error. */
export function usageText(path: readonly string[], node: CommandNode): string {
  return `${usageLine(path, node)}\n${listing(node)}\nRun "${path.join(' ')} --help" for more.\n`;
}
