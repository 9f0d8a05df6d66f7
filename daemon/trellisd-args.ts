// trellisd's command line: the few command options (--config, --check-config,
// --withdraw, --help, --version) and one flag per configuration key, spelled
// as schema.ts's flagName (key `etcd.tls.ca` ↔ `--etcd-tls-ca`).
//
// A flag takes its value as `--flag VALUE` or `--flag=VALUE`; a boolean key is a
// switch (`--vpc-enabled`, `--no-vpc-enabled`, and `--vpc-enabled=true|false`;
// the older `--vpc-enabled true|false` still works, as trellisd takes no
// positional arguments that a following "true" or "false" could be).
// Every mistake is a DaemonUsageError whose message is meant for the user
// (unknown options come with a "did you mean"); the caller prints it and
// exits 2. Parsing only: values are checked by src/config/load.ts.

import { didYouMean } from '../src/core/suggest.js';
import { CONFIG_KEYS, flagName, type ConfigKey } from '../src/config/schema.js';

export class DaemonUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonUsageError';
  }
}

export interface DaemonArgs {
  readonly config: string | undefined;
  readonly checkConfig: boolean;
  readonly withdraw: boolean;
  readonly help: boolean;
  readonly version: boolean;
  /** Configuration values given as flags, by key path (booleans as "true"/"false"). */
  readonly flags: ReadonlyMap<string, string>;
}

const SWITCHES = ['check-config', 'withdraw', 'help', 'version'] as const;

const byFlag: ReadonlyMap<string, ConfigKey> = new Map(CONFIG_KEYS.map((k) => [flagName(k.path), k]));

/** Every spelling trellisd accepts, for suggestions. */
export function knownFlags(): string[] {
  const out = ['--config', ...SWITCHES.map((s) => `--${s}`)];
  for (const [flag, key] of byFlag) out.push(`--${flag}`, ...(key.type === 'boolean' ? [`--no-${flag}`] : []));
  return out;
}

const TRUE = ['true', '1', 'yes'];
const FALSE = ['false', '0', 'no'];

export function parseDaemonArgs(argv: readonly string[]): DaemonArgs {
  let config: string | undefined;
  const switches = new Set<string>();
  const flags = new Map<string, string>();
  let lastSwitch: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const switchBefore = lastSwitch;
    lastSwitch = undefined;
    if (arg === '--') {
      const rest = argv.slice(i + 1);
      if (rest.length > 0) throw new DaemonUsageError(`unexpected argument ${JSON.stringify(rest[0])} (trellisd takes no arguments)`);
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      const hint = switchBefore !== undefined && [...TRUE, ...FALSE].includes(arg.toLowerCase())
        ? ` (--${switchBefore} is a switch: write --${switchBefore} or --no-${switchBefore}, or --${switchBefore}=${arg})`
        : ' (trellisd takes no arguments; settings are --flags)';
      throw new DaemonUsageError(`unexpected argument ${JSON.stringify(arg)}${hint}`);
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : arg.slice(1, eq < 0 ? undefined : eq);
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);
    const long = arg.startsWith('--') ? name : name === 'c' ? 'config' : name === 'h' ? 'help' : undefined;
    const takeValue = (label: string): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new DaemonUsageError(`option "${label}" needs a value`);
      i++;
      return next;
    };
    if (long === 'config') {
      config = takeValue(arg.startsWith('--') ? '--config' : '-c');
      continue;
    }
    if (long !== undefined && (SWITCHES as readonly string[]).includes(long)) {
      if (inline !== undefined) throw new DaemonUsageError(`option "--${long}" takes no value`);
      switches.add(long);
      continue;
    }
    const direct = long === undefined ? undefined : byFlag.get(long);
    const negatable = long?.startsWith('no-') === true ? byFlag.get(long.slice(3)) : undefined;
    const negated = direct === undefined && negatable?.type === 'boolean' ? negatable : undefined;
    const key = direct ?? negated;
    if (key === undefined) {
      const shown = eq < 0 ? arg : arg.slice(0, eq);
      throw new DaemonUsageError(`unknown option ${JSON.stringify(shown)}${didYouMean(shown, knownFlags())}`);
    }
    const flag = flagName(key.path);
    if (key.type === 'boolean') {
      if (negated !== undefined) {
        if (inline !== undefined) throw new DaemonUsageError(`option "--no-${flag}" takes no value`);
        flags.set(key.path, 'false');
        continue;
      }
      const following = argv[i + 1]?.toLowerCase();
      if (inline === undefined && (following === 'true' || following === 'false')) {
        flags.set(key.path, following);
        i++;
        continue;
      }
      if (inline === undefined) {
        flags.set(key.path, 'true');
        lastSwitch = flag;
        continue;
      }
      const v = inline.toLowerCase();
      if (!TRUE.includes(v) && !FALSE.includes(v)) {
        throw new DaemonUsageError(`invalid value ${JSON.stringify(inline)} for "--${flag}": expected true or false (or write --${flag} / --no-${flag})`);
      }
      flags.set(key.path, TRUE.includes(v) ? 'true' : 'false');
      continue;
    }
    flags.set(key.path, takeValue(`--${flag}`));
  }
  return {
    config,
    checkConfig: switches.has('check-config'),
    withdraw: switches.has('withdraw'),
    help: switches.has('help'),
    version: switches.has('version'),
    flags,
  };
}
