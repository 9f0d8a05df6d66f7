// How the cluster lab wires its namespaces: the commands for the router's
// bridges and the hosts' eth0 (fixed MAC addresses, optional permanent
// neighbour entries), its sysctls, and `ip -batch` in a namespace.
//
// Invariants: MAC addresses are locally administered (02:…) and fixed by
// subnet and host index, so an entry made once stays valid; only the test
// ranges 198.18.0.0/15 appear here.

import { spawn } from 'node:child_process';
import type { Netns } from './netns.js';

/** Runs `ip -n <ns> -batch -` with `lines` as commands. */
export function ipBatch(ns: Netns, lines: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-n', ns.name, '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`ip -n ${ns.name} -batch failed (${code}): ${stderr.trim()}`));
    });
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

/** The fixed MAC address of host i-j's eth0 (locally administered, like the bridges'). */
export function hostMac(i: number, j: number): string {
  return `02:00:c6:12:${hex(i)}:${hex(10 + j)}`;
}

/** The fixed MAC address of subnet i's bridge in the router (its gateway 198.18.<i>.1). */
export function bridgeMac(i: number): string {
  return `02:00:c6:12:${hex(i)}:01`;
}

/** Two hex digits of one MAC address octet. */
function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** An `ip -batch` line: a permanent neighbour entry for `ip` at `mac` on `dev`. */
function permanent(ip: string, mac: string, dev: string): string {
  return `neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`;
}

/** Host i-j's permanent neighbour entries: its gateway and every other host of subnet i. */
export function staticNeighbours(i: number, j: number, perSubnet: number): string[] {
  const lines = [permanent(`198.18.${i}.1`, bridgeMac(i), 'eth0')];
  for (let k = 0; k < perSubnet; k++) {
    if (k !== j) lines.push(permanent(`198.18.${i}.${10 + k}`, hostMac(i, k), 'eth0'));
  }
  return lines;
}

/** The router's permanent neighbour entry for host i-j, on its subnet's bridge. */
export function routerNeighbour(i: number, j: number): string {
  return permanent(`198.18.${i}.${10 + j}`, hostMac(i, j), `br${i}`);
}

/** sysctl assignments: forwarding on, rp_filter off (also on `ifname`). */
export function relaxed(ifname?: string): string[] {
  const out = ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'];
  if (ifname !== undefined) out.push(`net.ipv4.conf.${ifname}.rp_filter=0`);
  return out;
}
