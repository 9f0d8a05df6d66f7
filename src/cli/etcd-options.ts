// The etcd connection options shared by every trellisctl command that reads or
// writes the cluster state. The endpoint comes from --etcd-endpoints (or its
// short form --etcd), then
// TRELLIS_ETCD_ENDPOINTS, then the etcd section of a trellisd configuration
// file (--config, or TRELLIS_CONFIG), then http://127.0.0.1:2379; TLS and
// auth the same way (--etcd-tls-ca or TRELLIS_ETCD_TLS_CA, …).

import type { Etcd3 } from 'etcd3';
import { loadEtcdConfig } from '../config/load.js';
import { flagName, type ConfigKey } from '../config/schema.js';
import { checkEtcd, connectEtcd } from '../etcd/client.js';
import { Keys } from '../state/keys.js';
import type { OptionValues } from './spec.js';
import type { OptionSpec } from './command.js';

/** trellisctl flag → configuration key path. */
const FLAGS: Readonly<Record<string, string>> = {
  etcd: 'etcd.endpoints',
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
  'etcd-endpoints': { type: 'string', valueName: 'URLS', doc: 'etcd endpoints, comma-separated (TRELLIS_ETCD_ENDPOINTS; default http://127.0.0.1:2379)' },
  etcd: { type: 'string', valueName: 'URLS', doc: 'same as --etcd-endpoints' },
  'etcd-prefix': { type: 'string', valueName: 'PREFIX', doc: 'key prefix of the Trellis records (default /trellis)' },
  'etcd-tls-ca': { type: 'string', valueName: 'FILE', doc: 'CA certificate of the etcd server (https endpoints)' },
  'etcd-tls-cert': { type: 'string', valueName: 'FILE', doc: 'client certificate, when etcd requires one' },
  'etcd-tls-key': { type: 'string', valueName: 'FILE', doc: 'client private key' },
  'etcd-username': { type: 'string', valueName: 'NAME', doc: 'etcd user name' },
  'etcd-password': { type: 'string', valueName: 'PASSWORD', doc: 'etcd password (prefer TRELLIS_ETCD_PASSWORD)' },
  'etcd-request-timeout': { type: 'string', valueName: 'DURATION', doc: 'deadline of each etcd request (default 5s)' },
  config: { type: 'string', short: 'c', valueName: 'FILE', doc: 'read etcd settings from a trellisd configuration file (TRELLIS_CONFIG)' },
};

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
