#!/usr/bin/env -S node --max-semi-space-size=1
// trellisd: the Trellis node daemon. Command-line handling only: parse flags,
// load the configuration, then run, check or withdraw the node. Exit codes:
// 0 success, 1 runtime failure, 2 usage or configuration error. Messages to
// the user read `trellisd: what went wrong (what to do)`.
// The daemon runs with a 1 MiB V8 semi-space (young generation 3 MiB instead
// of up to 48 MiB): its allocations are small and short-lived, and the default
// young generation alone would be half its memory target (docs/scale.md). The
// shebang sets it; the image's entry point and lab/trellis.ts pass the same.

import { pino } from 'pino';
import { Document, isScalar, isSeq } from 'yaml';
import { describeError, ErrorCode, hasCode } from '../src/errors.js';
import { VERSION } from '../src/version.js';
import { loadConfig, describeConfig, tlsFileProblems, type TrellisConfig } from '../src/config/load.js';
import { CONFIG_KEYS, envName, flagName, formatDefault } from '../src/config/schema.js';
import { DaemonUsageError, parseDaemonArgs, type DaemonArgs } from './trellisd-args.js';
import { NodeDaemon } from './node-daemon.js';
import { withdrawNode } from './withdraw.js';
import { installWhenReady, removeConflist } from './cni-install.js';
import { detectHost } from './host-detect.js';
import { holdNotReady } from './hold-not-ready.js';
import { describeEgressDefault, removeEgress } from './egress.js';

const USAGE = `Usage: trellisd [--config FILE] [options]
       trellisd --check-config [--config FILE] [options]
       trellisd --withdraw [--config FILE] [options]

Runs the Trellis node daemon: registers this node, claims pod address blocks
from the shared topology in etcd and advertises them under a lease.

Commands:
  (none)            run the daemon (until SIGTERM or SIGINT; a restart within
                    holdTime keeps the node's lease, so peers notice nothing)
  --check-config    validate the configuration, print it resolved, and exit
  --withdraw        remove this node now: revoke its lease (its node record and
                    advertisement vanish at once) and give back all its blocks.
                    Stop the running daemon first. Only the lease recorded in
                    stateDir for this node name and etcd prefix is revoked;
                    other nodes: "trellisctl node remove NAME".

Options:
  -c, --config FILE   YAML configuration file (TRELLIS_CONFIG)
  -h, --help          show this help
  --version           print the version

Every configuration key can also be given as a flag or an environment
variable. Precedence: flag > TRELLIS_* variable > etcdctl's variable (for the
etcd endpoints and TLS files: ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT,
ETCDCTL_KEY) > file > default. A flag takes its value as --flag VALUE or
--flag=VALUE; a true/false setting is a switch: --vpc-enabled, --no-vpc-enabled.
Durations are written 6s, 500ms, 2m (a bare number means seconds).
`;

function keyHelp(): string {
  return CONFIG_KEYS.map((k) => {
    const flag = `--${flagName(k.path)}${k.type === 'boolean' ? `, --no-${flagName(k.path)}` : ''}`;
    const env = `${envName(k.path)}${k.fallbackEnv === undefined ? '' : `, else ${k.fallbackEnv}`}`;
    return `  ${flag}  (${env}; default: ${formatDefault(k)})\n      ${k.doc}`;
  }).join('\n');
}

function usageFailure(message: string): number {
  const advice = 'run "trellisd --help" for usage';
  const text = message.endsWith('?)')
    ? `${message.slice(0, -1)} ${advice})`
    : message.endsWith(')')
      ? `${message.slice(0, -1)}; ${advice})`
      : `${message} (${advice})`;
  process.stderr.write(`trellisd: ${text}\n`);
  return 2;
}

/** YAML of `data` with `# note` after each value that was detected rather than configured. */
function annotated(data: Record<string, unknown>, notes: ReadonlyMap<string, string>): string {
  const doc = new Document(data);
  for (const [path, note] of notes) {
    const node = doc.getIn(path.split('.'), true);
    if (isScalar(node)) node.comment = ` ${note}`;
    else if (isSeq(node)) {
      node.flow = true; // one line, so that the note follows the value
      node.comment = ` ${note}`;
    }
  }
  return doc.toString();
}

export async function main(argv: string[]): Promise<number> {
  let args: DaemonArgs;
  try {
    args = parseDaemonArgs(argv);
  } catch (err) {
    if (err instanceof DaemonUsageError) return usageFailure(err.message);
    throw err;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}${keyHelp()}\n`);
    return 0;
  }
  if (args.version) {
    process.stdout.write(`trellisd ${VERSION}\n`);
    return 0;
  }
  if (args.checkConfig && args.withdraw) return usageFailure('--check-config and --withdraw cannot be combined');
  let config: TrellisConfig;
  let notes = new Map<string, string>();
  try {
    const file = args.config ?? (process.env.TRELLIS_CONFIG || undefined);
    config = loadConfig({ file, flags: args.flags, env: process.env });
    const detected = await detectHost(config);
    config = detected.config;
    notes = detected.notes;
  } catch (err) {
    process.stderr.write(`trellisd: ${describeError(err)}\n`);
    return 2;
  }
  if (args.checkConfig) {
    // Unreadable TLS files are refused here; a running daemon reports them when it connects
    // (under cni.install it then stays up, not ready, saying which file).
    const unreadable = tlsFileProblems(config.etcd);
    if (unreadable.length > 0) {
      process.stderr.write(`trellisd: invalid configuration:\n${unreadable.map((p) => `  ${p}\n`).join('')}`);
      return 2;
    }
    process.stdout.write(`# configuration is valid\n${annotated(describeConfig(config), notes)}${describeEgressDefault(config)}`);
    return 0;
  }
  const log = pino({ level: config.log.level, base: { node: config.nodeName } });
  if (args.withdraw) {
    try {
      const { blocks } = await withdrawNode(config, log);
      if (config.cni.install) removeConflist(config, log);
      await removeEgress(log);
      process.stdout.write(`withdrew node ${config.nodeName}: lease revoked, ${blocks.length} block(s) released${blocks.length > 0 ? `: ${blocks.join(' ')}` : ''}\n`);
      return 0;
    } catch (err) {
      process.stderr.write(`trellisd: withdraw failed: ${describeError(err)}\n`);
      return hasCode(err, ErrorCode.Config) ? 2 : 1;
    }
  }
  let daemon: NodeDaemon;
  try {
    daemon = new NodeDaemon(config, log);
  } catch (err) {
    if (config.cni.install && hasCode(err, ErrorCode.Config)) return holdNotReady(config, log, err);
    process.stderr.write(`trellisd: ${describeError(err)}\n`);
    return hasCode(err, ErrorCode.Config) ? 2 : 1;
  }
  return run(daemon, config, log);
}

async function run(daemon: NodeDaemon, config: TrellisConfig, log: pino.Logger): Promise<number> {
  let stopping = false;
  let stop: (signal: string, code?: number) => void = () => undefined;
  let installError: unknown;
  const done = new Promise<number>((resolve) => {
    stop = (signal: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping (the lease is kept until it expires)');
      daemon.stop().then(
        () => resolve(code),
        (err: unknown) => {
          log.error({ err: describeError(err) }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  try {
    log.info({ version: VERSION }, 'starting');
    await daemon.start();
    log.info('running');
    if (config.cni.install) {
      installWhenReady(config, log.child({ component: 'cni-install' }), () => daemon.notReadyReason(), () => stopping).catch((err: unknown) => {
        log.fatal({ err: describeError(err), code: (err as { code?: string }).code }, 'installing the CNI plugin failed');
        installError = err;
        stop('cni install failed', hasCode(err, ErrorCode.Config) ? 2 : 1);
      });
    }
  } catch (err) {
    if (stopping) return done;
    log.fatal({ err: describeError(err), code: (err as { code?: string }).code }, 'start-up failed');
    await daemon.stop().catch(() => undefined);
    const configError = hasCode(err, ErrorCode.Config) || hasCode(err, ErrorCode.NotFound);
    if (configError && config.cni.install) return holdNotReady(config, log, err);
    return configError ? 2 : 1;
  }
  const code = await done;
  return hasCode(installError, ErrorCode.Config) ? holdNotReady(config, log, installError) : code;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Everything is stopped and logged (pino writes synchronously): exit now rather than
    // wait for closing sockets to drain. A failure leaves 200 ms for stderr to flush.
    setTimeout(() => process.exit(code), code !== 0 ? 200 : 0).unref();
  },
  (err: unknown) => {
    process.stderr.write(`trellisd: ${describeError(err)}\n`);
    process.exit(1);
  },
);
