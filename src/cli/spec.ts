// The shapes of trellisctl's command tree: commands, their options, the values
// parsed for them and the IO they run with. Types only, so that the parser
// (args.ts), the output helpers (output.ts) and the dispatcher (command.ts)
// all depend on this file and never on each other in a circle.

/** Option values by long name. */
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

/** Everything a command may touch outside itself. */
export interface CliIO {
  /** Writes text to standard output (callers include the newline). */
  stdout(text: string): void;
  stderr(text: string): void;
  /** Reads a whole file as UTF-8; "-" reads standard input. */
  readFile(path: string): Promise<string>;
}

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** Placeholder shown in help, e.g. "FORMAT". */
  readonly valueName?: string;
  readonly doc: string;
  readonly default?: string;
  /** Allowed values of a string option. */
  readonly choices?: readonly string[];
  /** Another spelling of the option named here: accepted, never shown in help. */
  readonly aliasOf?: string;
}

export interface Invocation {
  /** Command words from the root, e.g. ["trellisctl", "topology", "render"]. */
  readonly path: readonly string[];
  readonly positionals: readonly string[];
  /** Option values by long name; defaults applied. */
  readonly options: OptionValues;
}

export interface LeafCommand {
  readonly kind: 'command';
  readonly name: string;
  /** One line, shown in the parent's command list. */
  readonly summary: string;
  /** Positional arguments as shown in usage, e.g. "FILE". */
  readonly args: string;
  readonly positionals: { readonly min: number; readonly max: number };
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Longer explanation shown by --help. */
  readonly description: string;
  readonly examples: readonly string[];
  run(invocation: Invocation, io: CliIO): Promise<number>;
}

export interface CommandGroup {
  readonly kind: 'group';
  readonly name: string;
  readonly summary: string;
  readonly description: string;
  readonly commands: readonly CommandNode[];
  readonly examples: readonly string[];
}

export type CommandNode = LeafCommand | CommandGroup;
