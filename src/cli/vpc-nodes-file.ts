// The nodes file of `trellisctl vpc plan`: a JSON array of
//   {"name", "subnet", "instanceId", "blocks": ["cidr", …], "healthy": true, "draining": false}
// (`healthy` defaults to true, `draining` to false), checked against a topology. Every problem is
// reported, one per line, as `PATH: message` (PATH like `[2].blocks[0]`), so a
// file is fixed in one round; nothing is planned from a file with problems.
// Checks: JSON syntax; shape and types; unknown keys; names usable in keys and
// unique; known subnets; non-empty, unique instance ids; canonical CIDRs of
// the network's family inside the node's subnet pod prefix; no block owned
// twice or overlapping another (found through maps of the owned blocks and
// of their supernets, so a file of thousands of nodes is checked in linear
// time).

import { contains, formatPrefix, prefixKey, supernet, tryParsePrefix, type Prefix } from '../core/cidr.js';
import { allSubnets, findSubnet, type Topology } from '../core/topology.js';
import type { PlanNode } from '../core/vpc-plan.js';
import { checkKeys, Issues, NAME_PATTERN } from '../core/topology-fields.js';
import { EXIT_FAILURE, type CliIO } from './command.js';
import { displayName } from './topology-file.js';

const KEYS = ['name', 'subnet', 'instanceId', 'blocks', 'healthy', 'draining'];

export type NodesFileResult = { ok: true; nodes: PlanNode[] } | { ok: false; problems: string[] };

/** Parses and checks the nodes file text against `topology`. */
export function parseNodesFile(text: string, topology: Topology): NodesFileResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [`not valid JSON: ${(err as Error).message}`] };
  }
  if (!Array.isArray(doc)) return { ok: false, problems: ['must be a JSON array of nodes, like [{"name": "n1", "subnet": "…", "instanceId": "i-…", "blocks": ["…/26"]}]'] };
  const problems: string[] = [];
  const nodes: PlanNode[] = [];
  const names = new Map<string, number>();
  const instances = new Map<string, number>();
  type Owned = { prefix: Prefix; path: string; node: string };
  /** Owned blocks by prefix, and the first owned block under every prefix holding one. */
  const exact = new Map<string, Owned>();
  const under = new Map<string, Owned>();
  const clashWith = (p: Prefix): Owned | undefined => {
    for (let len = 0; len <= p.len; len++) {
      const hit = exact.get(prefixKey(len === p.len ? p : supernet(p, len)));
      if (hit !== undefined) return hit;
    }
    return under.get(prefixKey(p));
  };
  const own = (o: Owned): void => {
    exact.set(prefixKey(o.prefix), o);
    for (let len = 0; len <= o.prefix.len; len++) {
      const key = prefixKey(len === o.prefix.len ? o.prefix : supernet(o.prefix, len));
      if (!under.has(key)) under.set(key, o);
    }
  };
  doc.forEach((item: unknown, i) => {
    const at = `[${i}]`;
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      problems.push(`${at}: must be an object with name, subnet, instanceId and blocks`);
      return;
    }
    const o = item as Record<string, unknown>;
    const before = problems.length;
    const keyIssues = new Issues();
    checkKeys(keyIssues, at, o, KEYS);
    problems.push(...keyIssues.sorted().map((i) => `${i.path}: ${i.message}`));
    const str = (key: string): string | undefined => {
      const v = o[key];
      if (v === undefined) problems.push(`${at}.${key}: missing`);
      else if (typeof v !== 'string' || v === '') problems.push(`${at}.${key}: must be a non-empty string, got ${JSON.stringify(v)}`);
      else return v;
      return undefined;
    };
    const name = str('name');
    if (name !== undefined) {
      if (!NAME_PATTERN.test(name)) problems.push(`${at}.name: ${JSON.stringify(name)} is not a node name (letters, digits, ".", "_", "-")`);
      const first = names.get(name);
      if (first !== undefined) problems.push(`${at}.name: duplicate node name ${JSON.stringify(name)} (first used by [${first}])`);
      else names.set(name, i);
    }
    const subnetId = str('subnet');
    const subnet = subnetId === undefined ? undefined : findSubnet(topology, subnetId);
    if (subnetId !== undefined && subnet === undefined) {
      problems.push(`${at}.subnet: unknown subnet ${JSON.stringify(subnetId)} (the topology has ${allSubnets(topology).map((s) => s.id).join(', ')})`);
    }
    const instanceId = str('instanceId');
    if (instanceId !== undefined) {
      const first = instances.get(instanceId);
      if (first !== undefined) problems.push(`${at}.instanceId: duplicate instance id ${JSON.stringify(instanceId)} (first used by [${first}])`);
      else instances.set(instanceId, i);
    }
    const healthy = o.healthy ?? true;
    if (typeof healthy !== 'boolean') problems.push(`${at}.healthy: must be true or false, got ${JSON.stringify(o.healthy)}`);
    const draining = o.draining ?? false;
    if (typeof draining !== 'boolean') problems.push(`${at}.draining: must be true or false, got ${JSON.stringify(o.draining)}`);
    const blocks: Prefix[] = [];
    if (!Array.isArray(o.blocks)) {
      problems.push(`${at}.blocks: ${o.blocks === undefined ? 'missing' : 'must be an array of CIDR strings'}`);
    } else {
      o.blocks.forEach((b: unknown, k) => {
        const path = `${at}.blocks[${k}]`;
        const p = typeof b === 'string' ? tryParsePrefix(b) : `must be a CIDR string, got ${JSON.stringify(b)}`;
        if (typeof p === 'string') {
          problems.push(`${path}: ${p}`);
          return;
        }
        if (p.family !== topology.network.family) {
          problems.push(`${path}: ${formatPrefix(p)} is not in the address family of the network ${formatPrefix(topology.network)}`);
          return;
        }
        if (subnet !== undefined && !contains(subnet.podPrefix, p)) {
          problems.push(`${path}: ${formatPrefix(p)} is outside the pod prefix ${formatPrefix(subnet.podPrefix)} of subnet ${subnet.id}`);
          return;
        }
        const clash = clashWith(p);
        if (clash !== undefined) {
          const what = formatPrefix(clash.prefix) === formatPrefix(p) ? 'duplicate block' : `overlaps ${formatPrefix(clash.prefix)}`;
          problems.push(`${path}: ${formatPrefix(p)}: ${what} of node ${clash.node} (${clash.path})`);
          return;
        }
        own({ prefix: p, path, node: name ?? at });
        blocks.push(p);
      });
    }
    if (problems.length === before && name !== undefined && subnet !== undefined && instanceId !== undefined) {
      nodes.push({ name, subnet: subnet.id, instanceId, blocks, healthy: healthy === true, draining: draining === true });
    }
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, nodes };
}

/**
 * Reads a nodes file and parses it with `parse` (parseNodesFile, or a
 * variant of it): the nodes, or EXIT_FAILURE once a read error or every
 * problem has been written to stderr as `FILE: problem`.
 */
export async function loadNodesFile<N>(
  io: CliIO,
  file: string,
  parse: (text: string) => { ok: true; nodes: N } | { ok: false; problems: string[] },
): Promise<N | typeof EXIT_FAILURE> {
  let text: string;
  try {
    text = await io.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    io.stderr(`${displayName(file)}: cannot read the nodes file: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}\n`);
    return EXIT_FAILURE;
  }
  const parsed = parse(text);
  if (!parsed.ok) {
    io.stderr(parsed.problems.map((p) => `${displayName(file)}: ${p}\n`).join(''));
    return EXIT_FAILURE;
  }
  return parsed.nodes;
}
