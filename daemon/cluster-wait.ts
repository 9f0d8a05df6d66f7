// What trellisd waits for before it can register: etcd answering, and a valid
// topology stored in it. Both waits end early (with an error) once the daemon
// is stopping; neither gives up on its own.
// Invariants:
//  * An invalid stored topology is logged and never returned: the topology in
//    use stays the last valid one.
//  * The first etcd round trip is retried with its own backoff (250 ms
//    doubling to 5 s); the etcd client's per-request retries sit below it.

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { TrellisConfig } from '../src/config/load.js';
import type { BackoffPolicy } from '../src/core/backoff.js';
import type { Topology } from '../src/core/topology.js';
import { explainEtcdError, type EtcdSettings } from '../src/etcd/client.js';
import type { PrefixMirror } from '../src/etcd/prefix-mirror.js';
import { retryUntil } from '../src/retry.js';
import type { Keys } from '../src/state/keys.js';
import { decodeStoredTopology } from '../src/state/topology-record.js';

export function etcdSettings(config: TrellisConfig): EtcdSettings {
  return {
    endpoints: config.etcd.endpoints,
    tls: config.etcd.tls,
    username: config.etcd.username,
    password: config.etcd.password,
    requestTimeoutMs: config.etcd.requestTimeout,
  };
}

/** Waiting for the first etcd round trip: 250 ms doubling to 5 s. */
export const ETCD_WAIT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 5000 };

/** Retries the first etcd round trip until it works; throws the last error once `stopping()`. */
export async function waitForEtcd(client: Etcd3, keys: Keys, settings: EtcdSettings, log: Logger, stopping: () => boolean): Promise<void> {
  await retryUntil(() => client.get(keys.topology()).exec(), {
    policy: ETCD_WAIT_BACKOFF,
    retryable: () => !stopping(),
    onError: (err) => log.warn({ err: explainEtcdError(err, settings).message }, 'waiting for etcd'),
  });
}

/** The valid topology the mirror holds, or undefined (none stored, or invalid: logged). */
export function readTopology(mirror: PrefixMirror, keys: Keys, log: Logger): Topology | undefined {
  const entry = mirror.get(keys.topology());
  if (entry === undefined) return undefined;
  const checked = decodeStoredTopology(entry.value);
  if (!checked.ok) {
    log.error({ reason: checked.reason }, 'stored topology is invalid; keeping the last valid one');
    return undefined;
  }
  return checked.value;
}

/**
 * Starts `mirror` (a watch of the topology key) and resolves with the first
 * valid topology; `waiting` hears why there is none yet (none stored, or the
 * stored one is invalid and why), for /readyz.
 */
export async function waitForTopology(
  mirror: PrefixMirror,
  keys: Keys,
  log: Logger,
  stopping: () => boolean,
  waiting: (reason: string) => void = () => undefined,
): Promise<Topology> {
  await mirror.start();
  let warned = false;
  for (;;) {
    const topology = readTopology(mirror, keys, log);
    if (topology !== undefined) return topology;
    const entry = mirror.get(keys.topology());
    const checked = entry === undefined ? undefined : decodeStoredTopology(entry.value);
    waiting(
      checked !== undefined && !checked.ok
        ? `the topology stored in etcd is invalid: ${checked.reason}`
        : 'waiting for a topology in etcd (run "trellisctl topology apply FILE")',
    );
    if (!warned) {
      log.warn({ key: keys.topology() }, 'waiting for a topology: run "trellisctl topology apply FILE"');
      warned = true;
    }
    await new Promise<void>((resolve) => mirror.once('changes', () => resolve()));
    if (stopping()) throw new Error('stopped while waiting for a topology');
  }
}
