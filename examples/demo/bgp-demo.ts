// `npm run demo -- --bgp`: BGP export in network namespaces. Two rounds on
// a lab of three subnets of two hosts (lab/bgp-lab.ts): BIRD in the router
// namespace is the upstream router, an outside client sits behind it, every
// trellisd runs a GoBGP speaker in exporter mode. Round 1 lets the router
// take 100 prefixes (one per node); round 2 only 3 (one aggregate per
// subnet). Each round prints BIRD's BGP table and the outside client → pod
// matrix, and the demo exits 0 only when every ping is answered.

import { buildBgpLab, CLIENT_ADDRESS } from '../../lab/bgp-lab.js';
import { until } from '../../lab/pids.js';

const out = (s: string): void => void process.stdout.write(s);

async function round(maxPrefixes: number): Promise<{ ok: number; total: number }> {
  out(`\n== BGP, peer limit ${maxPrefixes} prefixes: building 3 subnets × 2 hosts, BIRD upstream, outside client ${CLIENT_ADDRESS}\n`);
  const lab = await buildBgpLab(undefined, { subnets: 3, hostsPerSubnet: 2, maxPrefixes });
  try {
    await lab.cluster.startDaemons(undefined, undefined, 60_000);
    const want = Math.min(maxPrefixes, lab.cluster.hosts.length);
    await until(`${want} prefixes in BIRD`, async () => (await lab.routes()).length === want, 120_000, 500);
    out(`\nBIRD's BGP routes (birdc show route):\n`);
    for (const r of await lab.routes()) out(`  ${r.prefix.padEnd(18)} via ${r.nextHops.join(', ')}\n`);
    const pods = await Promise.all(lab.cluster.hosts.map((h) => lab.cluster.addPod(h)));
    out(`\noutside client → pod (one echo each):\n`);
    let ok = 0;
    for (const p of pods) {
      const r = await lab.cluster.ping(lab.client, p.address, { count: 1 });
      ok += r.received;
      out(`  ${CLIENT_ADDRESS} → ${p.address.padEnd(14)} (${p.host.name}, ${p.host.subnet})  ${r.received === 1 ? 'ok' : 'FAIL'}\n`);
    }
    out(`${ok}/${pods.length} answered${ok === pods.length ? ': all green' : ''}\n`);
    return { ok, total: pods.length };
  } finally {
    await lab.destroy();
  }
}

export async function runBgpDemo(): Promise<number> {
  const a = await round(100);
  const b = await round(3);
  return a.ok === a.total && b.ok === b.total ? 0 : 1;
}
