// The etcd connection options shared by every trellisctl command that reads or
// writes the cluster state. They are spelled as trellisd spells them (flag
// name = configuration key, see src/config/schema.ts). The endpoint comes from
// --etcd-endpoints (--etcd is a hidden alias), then TRELLIS_ETCD_ENDPOINTS,
// then ETCDCTL_ENDPOINTS, then the etcd section of a trellisd configuration
// file (--config, or TRELLIS_CONFIG), then http://127.0.0.1:2379; TLS and auth
// the same way (--etcd-tls-ca, TRELLIS_ETCD_TLS_CA, ETCDCTL_CACERT, …).

import type { Etcd3 } from 'etcd3';
import { loadEtcdConfig } from '../config/load.js';
import { flagName, type ConfigKey } from '../config/schema.js';
import { checkEtcd, connectEtcd, explainEtcdError, isEtcdClientError, type EtcdSettings } from '../etcd/client.js';
import { describeError } from '../errors.js';
import { Keys } from '../state/keys.js';
import type { OptionValues } from './spec.js';
import type { OptionSpec } from './command.js';

/** trellisctl flag → configuration key path. */
const FLAGS: Readonly<Record<string, string>> = {
  'etcd-endpoints': 'etcd.endpoints',
  'etcd-prefix': 'etcd.prefix',
  'etcd-tls-ca': 'etcd.tls.ca',
  'etcd-tls-cert': 'etcd.tls.cert',
  'etcd-tls-key': 'etcd.tls.key',
  'etcd-username': 'etcd.username',
  'etcd-password': 'etcd.password',
  'etcd-request-timeout': 'etcd.requestTimeout',
};

export const etcdOptions: Readonly<Record<string, OptionSpec>> = {
  'etcd-endpoints': {
    type: 'string',
    valueName: 'URLS',
    doc: 'etcd endpoints, comma-separated (TRELLIS_ETCD_ENDPOINTS, else ETCDCTL_ENDPOINTS; default http://127.0.0.1:2379)',
  },
  etcd: { type: 'string', aliasOf: 'etcd-endpoints', doc: 'old spelling of --etcd-endpoints' },
  'etcd-prefix': { type: 'string', valueName: 'PREFIX', doc: 'key prefix of the Trellis records (TRELLIS_ETCD_PREFIX; default /trellis)' },
  'etcd-tls-ca': { type: 'string', valueName: 'FILE', doc: 'CA certificate of the etcd server, for https endpoints (TRELLIS_ETCD_TLS_CA, else ETCDCTL_CACERT)' },
  'etcd-tls-cert': { type: 'string', valueName: 'FILE', doc: 'client certificate, when etcd requires one (TRELLIS_ETCD_TLS_CERT, else ETCDCTL_CERT)' },
  'etcd-tls-key': { type: 'string', valueName: 'FILE', doc: 'client private key (TRELLIS_ETCD_TLS_KEY, else ETCDCTL_KEY)' },
  'etcd-username': { type: 'string', valueName: 'NAME', doc: 'etcd user name (TRELLIS_ETCD_USERNAME)' },
  'etcd-password': { type: 'string', valueName: 'PASSWORD', doc: 'etcd password (prefer TRELLIS_ETCD_PASSWORD)' },
  'etcd-request-timeout': { type: 'string', valueName: 'DURATION', doc: 'deadline of each etcd request (TRELLIS_ETCD_REQUEST_TIMEOUT; default 5s)' },
  config: {
    type: 'string',
    short: 'c',
    valueName: 'FILE',
    doc: 'read etcd settings from a trellisd configuration file (TRELLIS_CONFIG); precedence: flag > TRELLIS_* > ETCDCTL_* > file > default',
  },
};

/** The settings of the last session opened, so that a failure can name the endpoint. */
let lastSettings: EtcdSettings | undefined;

/** A command's failure as one line for the user: etcd client errors say which endpoint failed and what to check. */
export function describeCommandError(err: unknown): string {
  if (lastSettings !== undefined && isEtcdClientError(err)) return explainEtcdError(err, lastSettings).message;
  return describeError(err);
}

export interface EtcdSession {
  readonly client: Etcd3;
  readonly keys: Keys;
  close(): void;
}

/** Connect with the options of `options` (plus environment); the first round trip is made here. */
export async function openEtcd(options: OptionValues, env: NodeJS.ProcessEnv = process.env): Promise<EtcdSession> {
  const flags = new Map<string, string>();
  for (const [flag, path] of Object.entries(FLAGS)) {
    const v = options[flag];
    if (typeof v === 'string') flags.set(path, v);
  }
  const byPath = new Map(Object.entries(FLAGS).map(([flag, path]) => [path, flag]));
  const file = typeof options.config === 'string' ? options.config : env.TRELLIS_CONFIG;
  const etcd = loadEtcdConfig({
    file,
    flags,
    env,
    flagLabel: (k: ConfigKey) => `--${byPath.get(k.path) ?? flagName(k.path)}`,
  });
  const settings = { ...etcd, requestTimeoutMs: etcd.requestTimeout };
  lastSettings = settings;
  const client = connectEtcd(settings);
  const keys = new Keys(etcd.prefix);
  try {
    await checkEtcd(client, settings, keys.topology());
  } catch (err) {
    client.close();
    throw err;
  }
  return { client, keys, close: () => client.close() };
}
