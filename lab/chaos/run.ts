// `npm run chaos`: runs the chaos faults (lab/chaos/registry.ts) against a
// lab cluster, prints the table, exits 1 if any promised fault lost anything.
//
// Usage: npm run chaos [-- --faults etcd-pause,partition-node] [--hosts 3] [--hold-time 6s] [--etcd-members 3]
//                         [--no-vpc] [--no-auth] [--list] [--verbose] [--help]
// Needs root (network namespaces), etcd and moto_server (VPC mode, the default; --no-vpc runs without EC2, and
// the VPC faults are then skipped). etcd authentication is on, each trellisd as its own node user (trellisctl
// rbac apply, docs/trust.md); --no-auth runs etcd open.

import { FAULTS, faultsNamed } from './registry.js';
import { chaosTable, runChaos } from './runner.js';

const USAGE = `npm run chaos [-- OPTIONS]: runs every chaos fault (or those of --faults) against a lab cluster with
continuous pod-to-pod pings and CNI churn, prints one row per fault, exits 1 if a promised fault lost anything.
  --faults A,B        only these faults (--list names them all)
  --hosts N           hosts in the one subnet (default 3)
  --hold-time D       trellisd hold time (default 6s)
  --etcd-members N    etcd members: 1, 3 or 5 (default 3)
  --no-vpc            no EC2 (moto); the EC2 faults are then skipped
  --no-auth           etcd without authentication (default: on, each trellisd as its own node user)
  --list              the faults, and whether the docs promise that nothing is lost
  --verbose           every detail of every row
Needs root (network namespaces), etcd and moto_server. See docs/reliability.md.`;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
}

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (process.argv.includes('--list')) {
    for (const f of FAULTS) process.stdout.write(`${f.name.padEnd(26)} ${f.promised ? 'promised    ' : 'not promised'} ${f.summary}\n`);
    return 0;
  }
  const faults = faultsNamed(arg('faults')?.split(',').filter(Boolean));
  const verbose = process.argv.includes('--verbose');
  const rows = await runChaos(undefined, {
    faults,
    hosts: arg('hosts') === undefined ? undefined : Number(arg('hosts')),
    holdTime: arg('hold-time'),
    etcdMembers: Number(arg('etcd-members') ?? 3),
    vpc: !process.argv.includes('--no-vpc'),
    auth: !process.argv.includes('--no-auth'),
    log: (l) => process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${chaosTable(rows)}\n`);
  for (const r of rows) {
    const details = [...r.routesRemoved.map((x) => `removed ${x}`), ...r.routesInstalled.map((x) => `installed ${x}`), ...(r.vpcEntriesLost ?? []).map((x) => `VPC entry lost ${x}`), ...r.addressesLost.map((x) => `lost ${x}`), ...r.addressesDuplicated.map((x) => `duplicated ${x}`), ...r.cniFailures];
    if (verbose || r.verdict !== 'ok') for (const d of [...details, ...r.notes]) process.stdout.write(`  ${r.fault}: ${d}\n`);
  }
  return rows.some((r) => r.verdict === 'FAILED') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
