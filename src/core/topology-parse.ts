// Parsing and validation of the topology file (YAML; JSON is valid YAML).
//
// parseTopology never stops at the first problem: it reports every one it can
// find, each with the path of the offending key (`zones[1].subnets[0].podPrefix`,
// `network`, or "" for the file as a whole) and a message that names the value
// and the rule it breaks. A check that depends on a value that is itself
// invalid is skipped, so one mistake yields one issue, not a cascade.
// Invariant: a Topology is returned only when the file is entirely valid, and
// then it satisfies every invariant listed in topology.ts (pod prefixes inside
// the network, disjoint and holding at least one block; host CIDRs disjoint and
// outside the pod network; unique zone names and subnet ids).

import { LineCounter, parseDocument } from 'yaml';
import { ErrorCode, TrellisError } from '../errors.js';
import { contains, formatPrefix, maxLen, overlaps, type Prefix } from './cidr.js';
import { carvePodPrefixes } from './carve.js';
import type { Subnet, Topology, Zone } from './topology.js';
import {
  Issues,
  checkKeys,
  checkRange,
  describe,
  has,
  isMapping,
  missing,
  readInteger,
  readName,
  readPrefix,
  type Bound,
  type Mapping,
  type TopologyIssue,
} from './topology-fields.js';

export type { TopologyIssue } from './topology-fields.js';

export type TopologyParseResult = { topology: Topology } | { errors: TopologyIssue[] };

/** Default block size (prefix length) per address family. */
export const DEFAULT_BLOCK_SIZE = { 4: 26, 6: 122 } as const;

const ROOT_KEYS = ['network', 'blockSize', 'nodeHomeSize', 'subnetSize', 'zones'] as const;
const ZONE_KEYS = ['name', 'subnets'] as const;
const SUBNET_KEYS = ['id', 'cidr', 'podPrefix', 'routeTable'] as const;

/** A subnet as read from the file, before cross-checks and carving. */
interface SubnetDraft {
  readonly path: string;
  readonly zoneIndex: number;
  readonly zone: string;
  readonly id: string | undefined;
  readonly cidr: Prefix | undefined;
  readonly podPrefix: Prefix | undefined;
  readonly podPrefixWritten: boolean;
  readonly routeTable: string | undefined;
}

function label(s: SubnetDraft): string {
  return s.id === undefined ? `the subnet at ${s.path}` : `subnet ${s.id}`;
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

/** YAML syntax errors with line and column, or the plain data of the document. */
function syntaxIssues(text: string): { doc: unknown } | { issues: TopologyIssue[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    return {
      issues: problems.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax error at line ${line}, column ${col}: ${oneLine(e.message)}` };
      }),
    };
  }
  try {
    return { doc: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    return { issues: [{ path: '', message: `YAML error: ${oneLine((err as Error).message)}` }] };
  }
}

/**
 * Parses and validates a topology file and carves the pod prefixes of the
 * subnets that name none. Returns the resolved topology, or every problem found.
 */
export function parseTopology(text: string, fileName: string): TopologyParseResult {
  const parsed = syntaxIssues(text);
  if ('issues' in parsed) return { errors: parsed.issues };
  const root = parsed.doc;
  const issues = new Issues();
  if (root === null || root === undefined) {
    issues.add('', `${fileName} is empty: expected a mapping with "network" and "zones"`);
    return { errors: issues.sorted() };
  }
  if (!isMapping(root)) {
    issues.add('', `the topology must be a mapping with "network" and "zones", got ${describe(root)}`);
    return { errors: issues.sorted() };
  }
  checkKeys(issues, '', root, ROOT_KEYS);

  const network = has(root, 'network') ? readPrefix(issues, 'network', root.network) : undefined;
  if (!has(root, 'network')) missing(issues, 'network', 'the pod network, e.g. 100.96.0.0/11');
  const sizes = readSizes(issues, root, network);
  const subnets = readZones(issues, root);

  checkHostCidrs(issues, subnets, network);
  const podPrefixesOk = checkPodPrefixes(issues, subnets, network, sizes.blockSize);
  if (network === undefined || sizes.blockSize === undefined || sizes.subnetSize === undefined || !podPrefixesOk) {
    return { errors: issues.sorted() };
  }

  const carved = carvePodPrefixes(
    network,
    sizes.subnetSize,
    subnets.map((s) => s.podPrefix),
  );
  if (!carved.ok) {
    const failed = subnets[carved.failedIndex] as SubnetDraft;
    const more = carved.needed - carved.carved - 1;
    issues.add(
      failed.path,
      `the network ${formatPrefix(network)} is too small: it has room for ${carved.carved} carved /${sizes.subnetSize} ` +
        `pod prefixes beside the explicit ones, but ${carved.needed} subnets need one; ${label(failed)} ` +
        `is the first that does not fit${more > 0 ? ` (${more} more after it)` : ''}` +
        ' (widen the network, raise subnetSize, or give subnets explicit podPrefix values)',
    );
  }
  if (issues.count > 0 || !carved.ok || sizes.nodeHomeSize === undefined) {
    return { errors: issues.sorted() };
  }
  return { topology: build(network, sizes.blockSize, sizes.nodeHomeSize, sizes.subnetSize, subnets, carved.prefixes) };
}

function readSizes(
  issues: Issues,
  root: Mapping,
  network: Prefix | undefined,
): { blockSize: number | undefined; nodeHomeSize: number | undefined; subnetSize: number | undefined } {
  const net = network === undefined ? undefined : formatPrefix(network);
  // undefined: key absent; null: present but not an integer (already reported).
  const read = (key: string): number | null | undefined =>
    has(root, key) ? (readInteger(issues, key, root[key]) ?? null) : undefined;
  const atLeastNetwork = (what: string): Bound | undefined =>
    network && { value: network.len, why: `${what} cannot be larger than the network ${net}` };
  const longest: Bound | undefined = network && {
    value: maxLen(network.family),
    why: `the longest IPv${network.family} prefix`,
  };

  const blockRaw = read('blockSize');
  let blockSize: number | undefined;
  if (blockRaw === undefined) {
    blockSize = network && DEFAULT_BLOCK_SIZE[network.family];
    if (network !== undefined && blockSize !== undefined && blockSize < network.len) {
      issues.add('blockSize', `the default /${blockSize} is larger than the network ${net}: set blockSize to ${network.len} or more`);
      return { blockSize: undefined, nodeHomeSize: undefined, subnetSize: undefined };
    }
  } else {
    blockSize = checkRange(issues, 'blockSize', blockRaw, atLeastNetwork('a block'), longest);
  }
  const defaults =
    network === undefined || blockSize === undefined
      ? undefined
      : { nodeHomeSize: Math.max(network.len, blockSize - 2), subnetSize: Math.min(network.len + 5, blockSize) };

  const homeRaw = read('nodeHomeSize');
  const nodeHomeSize =
    homeRaw === undefined
      ? defaults?.nodeHomeSize
      : checkRange(
          issues,
          'nodeHomeSize',
          homeRaw,
          atLeastNetwork('a node home'),
          blockSize === undefined ? longest : { value: blockSize, why: `a node home holds whole /${blockSize} blocks` },
        );

  const subnetRaw = read('subnetSize');
  const subnetSize =
    subnetRaw === undefined
      ? defaults?.subnetSize
      : checkRange(
          issues,
          'subnetSize',
          subnetRaw,
          atLeastNetwork('a carved pod prefix'),
          blockSize === undefined ? longest : { value: blockSize, why: `a carved pod prefix must hold a /${blockSize} block` },
        );
  return { blockSize, nodeHomeSize, subnetSize };
}

function readZones(issues: Issues, root: Mapping): SubnetDraft[] {
  const subnets: SubnetDraft[] = [];
  if (!has(root, 'zones')) {
    missing(issues, 'zones', 'a list of zones, each with a name and its subnets');
    return subnets;
  }
  const zones = root.zones;
  if (!Array.isArray(zones)) {
    issues.add('zones', `expected a list of zones, got ${describe(zones)}`);
    return subnets;
  }
  if (zones.length === 0) issues.add('zones', 'must list at least one zone');
  const zoneNames = new Map<string, string>();
  const subnetIds = new Map<string, string>();
  for (const [zi, zone] of zones.entries()) {
    const zpath = `zones[${zi}]`;
    if (!isMapping(zone)) {
      issues.add(zpath, `expected a mapping with "name" and "subnets", got ${describe(zone)}`);
      continue;
    }
    checkKeys(issues, zpath, zone, ZONE_KEYS);
    let name: string | undefined;
    if (!has(zone, 'name')) missing(issues, `${zpath}.name`, 'the zone name, e.g. us-east-1a');
    else name = readName(issues, `${zpath}.name`, zone.name, 'zone name');
    if (name !== undefined) {
      const first = zoneNames.get(name);
      if (first !== undefined) issues.add(`${zpath}.name`, `duplicate zone name ${JSON.stringify(name)} (first used by ${first})`);
      else zoneNames.set(name, zpath);
    }
    if (!has(zone, 'subnets')) {
      missing(issues, `${zpath}.subnets`, 'a list of subnets, each with an id and a host cidr');
      continue;
    }
    if (!Array.isArray(zone.subnets)) {
      issues.add(`${zpath}.subnets`, `expected a list of subnets, got ${describe(zone.subnets)}`);
      continue;
    }
    if (zone.subnets.length === 0) issues.add(`${zpath}.subnets`, 'must list at least one subnet');
    for (const [si, subnet] of zone.subnets.entries()) {
      const draft = readSubnet(issues, `${zpath}.subnets[${si}]`, subnet, zi, name ?? '');
      if (draft === undefined) continue;
      if (draft.id !== undefined) {
        const first = subnetIds.get(draft.id);
        if (first !== undefined) {
          issues.add(`${draft.path}.id`, `duplicate subnet id ${JSON.stringify(draft.id)} (first used by ${first})`);
        } else {
          subnetIds.set(draft.id, draft.path);
        }
      }
      subnets.push(draft);
    }
  }
  return subnets;
}

function readSubnet(issues: Issues, path: string, value: unknown, zoneIndex: number, zone: string): SubnetDraft | undefined {
  if (!isMapping(value)) {
    issues.add(path, `expected a mapping with "id" and "cidr", got ${describe(value)}`);
    return undefined;
  }
  checkKeys(issues, path, value, SUBNET_KEYS);
  let id: string | undefined;
  if (!has(value, 'id')) missing(issues, `${path}.id`, 'the subnet id, e.g. subnet-0a1b2c');
  else id = readName(issues, `${path}.id`, value.id, 'subnet id');
  let cidr: Prefix | undefined;
  if (!has(value, 'cidr')) missing(issues, `${path}.cidr`, "the subnet's host CIDR, e.g. 198.18.0.0/24");
  else cidr = readPrefix(issues, `${path}.cidr`, value.cidr);
  const podPrefixWritten = has(value, 'podPrefix');
  const podPrefix = podPrefixWritten
    ? readPrefix(issues, `${path}.podPrefix`, value.podPrefix, 'omit the key to have one carved')
    : undefined;
  const routeTable = has(value, 'routeTable')
    ? readName(issues, `${path}.routeTable`, value.routeTable, 'route table id', 'omit the key when there is none')
    : undefined;
  return { path, zoneIndex, zone, id, cidr, podPrefix, podPrefixWritten, routeTable };
}

function checkHostCidrs(issues: Issues, subnets: readonly SubnetDraft[], network: Prefix | undefined): void {
  for (const [i, s] of subnets.entries()) {
    if (s.cidr === undefined) continue;
    const text = formatPrefix(s.cidr);
    if (network !== undefined && overlaps(s.cidr, network)) {
      issues.add(
        `${s.path}.cidr`,
        `host CIDR ${text} overlaps the pod network ${formatPrefix(network)}: host and pod addresses must not mix`,
      );
    }
    for (const earlier of subnets.slice(0, i)) {
      if (earlier.cidr === undefined || !overlaps(earlier.cidr, s.cidr)) continue;
      const other = `${label(earlier)} (${earlier.path}.cidr)`;
      issues.add(
        `${s.path}.cidr`,
        earlier.cidr.len === s.cidr.len
          ? `host CIDR ${text} is already the host CIDR of ${other}`
          : `host CIDR ${text} overlaps ${formatPrefix(earlier.cidr)}, the host CIDR of ${other}`,
      );
    }
  }
}

/** Checks explicit pod prefixes; true when every one is usable for carving. */
function checkPodPrefixes(
  issues: Issues,
  subnets: readonly SubnetDraft[],
  network: Prefix | undefined,
  blockSize: number | undefined,
): boolean {
  let ok = subnets.every((s) => !s.podPrefixWritten || s.podPrefix !== undefined);
  const accepted: SubnetDraft[] = [];
  for (const s of subnets) {
    const p = s.podPrefix;
    if (p === undefined) continue;
    const path = `${s.path}.podPrefix`;
    const text = formatPrefix(p);
    if (network !== undefined && p.family !== network.family) {
      issues.add(path, `${text} is IPv${p.family} but the network ${formatPrefix(network)} is IPv${network.family}`);
      ok = false;
      continue;
    }
    if (network !== undefined && !contains(network, p)) {
      issues.add(path, `${text} is outside the network ${formatPrefix(network)}`);
      ok = false;
      continue;
    }
    if (blockSize !== undefined && p.len > blockSize) {
      issues.add(
        path,
        `${text} cannot hold one /${blockSize} block (blockSize is ${blockSize}): use a pod prefix of length ${blockSize} or shorter`,
      );
      ok = false;
    }
    for (const earlier of accepted) {
      const q = earlier.podPrefix as Prefix;
      if (!overlaps(p, q)) continue;
      issues.add(path, `${text} overlaps ${formatPrefix(q)}, the pod prefix of ${label(earlier)} (${earlier.path}.podPrefix)`);
      ok = false;
    }
    accepted.push(s);
  }
  return ok;
}

function build(
  network: Prefix,
  blockSize: number,
  nodeHomeSize: number,
  subnetSize: number,
  drafts: readonly SubnetDraft[],
  podPrefixes: readonly Prefix[],
): Topology {
  const zones: Array<{ name: string; subnets: Subnet[] }> = [];
  for (const [i, d] of drafts.entries()) {
    const zone = (zones[d.zoneIndex] ??= { name: d.zone, subnets: [] });
    zone.subnets.push({
      id: d.id as string,
      zone: d.zone,
      cidr: d.cidr as Prefix,
      podPrefix: podPrefixes[i] as Prefix,
      podPrefixExplicit: d.podPrefixWritten,
      routeTable: d.routeTable,
    });
  }
  return { network, blockSize, nodeHomeSize, subnetSize, zones: zones as Zone[] };
}

/** One line per issue, as `FILE: PATH: message` (`FILE: message` for the whole file). */
export function formatIssues(fileName: string, issues: readonly TopologyIssue[]): string[] {
  return issues.map((i) => (i.path === '' ? `${fileName}: ${i.message}` : `${fileName}: ${i.path}: ${i.message}`));
}

/** Like parseTopology, but throws a TrellisError (E_TOPOLOGY) listing every issue. */
export function loadTopology(text: string, fileName: string): Topology {
  const result = parseTopology(text, fileName);
  if ('topology' in result) return result.topology;
  throw new TrellisError(ErrorCode.Topology, `invalid topology:\n${formatIssues(fileName, result.errors).join('\n')}`, {
    details: { file: fileName, issues: result.errors },
  });
}
