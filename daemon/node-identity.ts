// This node's identity record (src/state/node-identity.ts): written once the
// node holds a block (a node that cannot claim one leaves nothing behind) and
// before it registers, so that what it holds can be traced to its instance
// after its lease is gone (the node collector's EC2 rule), and so that a node
// back on a new instance, host IP or subnet replaces what its previous run
// left before it is seen again (the collector reads the identity again right
// before it collects: a stale instance id is not acted on). Written again
// only when it differs; retried until written (etcd may be briefly
// unavailable at start).

import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { describeError } from '../src/errors.js';
import { writeIdentity } from '../src/etcd/node-identities.js';
import { retryUntil } from '../src/retry.js';
import type { Keys } from '../src/state/keys.js';
import type { IdentityInfo } from '../src/state/node-identity.js';
import { FIRST_BLOCK_BACKOFF } from './first-block.js';

export async function writeOwnIdentity(client: Etcd3, keys: Keys, info: IdentityInfo, log: Logger, stopping: () => boolean): Promise<void> {
  const written = await retryUntil(() => writeIdentity(client, keys, info, Date.now()), {
    policy: FIRST_BLOCK_BACKOFF,
    stopped: stopping,
    onError: (err, delayMs) => log.warn({ err: describeError(err), retryInMs: delayMs }, 'cannot write the identity record; retrying'),
  });
  if (written === true) log.info({ ...info }, 'identity record written');
}
