// GC and STATUS of the trellis plugin (CNI 1.1.0).
//
// Invariants:
//  * GC releases, through trellisd, every allocation of this network whose
//    (container id, ifname) is not in `cni.dev/valid-attachments`; in main
//    mode it also deletes leftover host veths of this network. A veth is only
//    ever deleted when its name has the plugin's prefix, its alias says it was
//    made by this plugin for this network, its name is the one derived from
//    the (container id, ifname) in that alias, and that attachment is not valid.
//  * STATUS is read-only: exit 0 when trellisd answers and is ready, else 50.

import { Code, CniError, VETH_PREFIX, vethNames, type NetConf } from './cni.js';
import { classify, parseJsonLines, runBatch } from './ip-batch.js';
import { TrellisdClient } from './trellisd-client.js';

/** Host veths this plugin made for `network` whose attachment is not in `valid`. */
export function staleVeths(links: ReadonlyArray<Record<string, unknown>>, network: string, valid: ReadonlySet<string>): string[] {
  const stale: string[] = [];
  for (const link of links) {
    const name = link.ifname;
    const alias = link.ifalias;
    if (typeof name !== 'string' || !name.startsWith(VETH_PREFIX) || typeof alias !== 'string') continue;
    const parts = alias.split('/');
    if (parts.length !== 4 || parts[0] !== 'trellis' || parts[1] !== network) continue;
    const [, , containerId, ifName] = parts as [string, string, string, string];
    if (vethNames(containerId, ifName).host !== name) continue;
    if (!valid.has(`${containerId}\u0000${ifName}`)) stale.push(name);
  }
  return stale;
}

async function removeStaleVeths(conf: NetConf): Promise<void> {
  const shown = await runBatch(['link show type veth'], undefined, { json: true });
  if (!shown.ok) throw classify(shown, 'listing host veths', undefined);
  const links = (parseJsonLines(shown.stdout)[0] ?? []) as Array<Record<string, unknown>>;
  const valid = new Set(conf.validAttachments.map((a) => `${a.containerId}\u0000${a.ifName}`));
  const stale = staleVeths(links, conf.name, valid);
  if (stale.length === 0) return;
  // -force: one that vanished meanwhile (a concurrent DEL) does not stop the others.
  const out = await runBatch(
    stale.map((n) => `link del dev ${n}`),
    undefined,
    { force: true },
  );
  const failures = out.stderr.split('\n').filter((l) => l !== '' && !/Cannot find device|Command failed/.test(l));
  if (!out.ok && failures.length > 0) throw classify({ ...out, stderr: failures.join('\n') }, 'deleting stale host veths', undefined);
}

export async function gc(conf: NetConf): Promise<void> {
  let vethError: unknown;
  if (conf.mode === 'main') {
    try {
      await removeStaleVeths(conf);
    } catch (err) {
      vethError = err;
    }
  }
  await new TrellisdClient(conf.socket, conf.timeoutMs).gc(conf.name, conf.validAttachments);
  if (vethError !== undefined) throw vethError;
}

export async function status(conf: NetConf): Promise<void> {
  let ready;
  try {
    ready = await new TrellisdClient(conf.socket, conf.timeoutMs).status();
  } catch (err) {
    throw new CniError(Code.NotAvailable, `plugin not available: ${(err as Error).message}`);
  }
  if (!ready.ready) throw new CniError(Code.NotAvailable, `plugin not available: trellisd is not ready: ${ready.reason || 'starting'}`);
}
