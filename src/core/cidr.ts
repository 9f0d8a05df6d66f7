// Exact CIDR arithmetic for IPv4 and IPv6 on bigint.
//
// A Prefix is always canonical: no bit below `len` is set in `addr`. Parsing
// rejects non-canonical text ("10.0.0.5/24") instead of silently masking it,
// because a typo in a pod network must never widen or move it. Set operations
// (subtract, aggregate) are exact: the addresses covered by their result are
// precisely those of the input set, using the fewest possible prefixes.
// IPv4 text is parsed by hand (it is on every hot path); IPv6 goes through
// ip-cidr / ip-address, which handle the many spellings of an IPv6 address.

import IPCIDR from 'ip-cidr';
import { ErrorCode, TrellisError } from '../errors.js';

export type Family = 4 | 6;

export interface Address {
  readonly family: Family;
  readonly addr: bigint;
}

export interface Prefix {
  readonly family: Family;
  /** The first address; bits below `len` are zero. */
  readonly addr: bigint;
  readonly len: number;
}

export function maxLen(family: Family): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function invalid(text: string, why: string): TrellisError {
  return new TrellisError(ErrorCode.InvalidCidr, `invalid ${why}: ${JSON.stringify(text)}`, {
    details: { value: text },
  });
}

const v4Octet = /^(0|[1-9][0-9]{0,2})$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!v4Octet.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseV6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(':')) return undefined;
  let hex = text;
  if (text.includes('.')) {
    // A trailing dotted IPv4 part ("::ffff:100.64.0.1") stands for the last two groups.
    const colon = text.lastIndexOf(':');
    const v4 = parseV4(text.slice(colon + 1));
    if (v4 === undefined) return undefined;
    hex = `${text.slice(0, colon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  if (!IPCIDR.isValidAddress(hex)) return undefined;
  return IPCIDR.formatIP<bigint>(IPCIDR.createAddress(hex), { type: 'bigInteger' });
}

/** Parse one IPv4 or IPv6 address (no prefix length). */
export function parseAddress(text: string): Address {
  const v4 = parseV4(text);
  if (v4 !== undefined) return { family: 4, addr: v4 };
  const v6 = parseV6(text);
  if (v6 !== undefined) return { family: 6, addr: v6 };
  throw invalid(text, 'IP address');
}

export function formatAddress(a: Address): string {
  if (a.family === 4) {
    const n = Number(a.addr);
    return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  // RFC 5952: lower case, longest run (≥ 2) of zero groups compressed, leftmost on ties.
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.addr >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function hostMask(family: Family, len: number): bigint {
  return (1n << BigInt(maxLen(family) - len)) - 1n;
}

/**
 * Parse "a.b.c.d/len" or "x::/len". Rejects a prefix with host bits set and
 * names the canonical prefix the caller probably meant.
 */
export function parsePrefix(text: string): Prefix {
  if (typeof text !== 'string') throw invalid(String(text), 'CIDR prefix (not a string)');
  const slash = text.indexOf('/');
  if (slash < 0) throw invalid(text, 'CIDR prefix (missing "/length")');
  const lenText = text.slice(slash + 1);
  const address = (() => {
    try {
      return parseAddress(text.slice(0, slash));
    } catch {
      throw invalid(text, 'CIDR prefix (bad address)');
    }
  })();
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > maxLen(address.family)) {
    throw invalid(text, `CIDR prefix (length must be 0..${maxLen(address.family)})`);
  }
  const len = Number(lenText);
  const host = address.addr & hostMask(address.family, len);
  if (host !== 0n) {
    const canonical = formatPrefix({ family: address.family, addr: address.addr - host, len });
    throw new TrellisError(
      ErrorCode.InvalidCidr,
      `${text} is not a canonical prefix: host bits are set (did you mean ${canonical}?)`,
      { details: { value: text, canonical } },
    );
  }
  return { family: address.family, addr: address.addr, len };
}

/** Like parsePrefix, but returns the error message instead of throwing. */
export function tryParsePrefix(text: unknown): Prefix | string {
  if (typeof text !== 'string') return `expected a CIDR prefix string, got ${typeof text}`;
  try {
    return parsePrefix(text);
  } catch (err) {
    return (err as Error).message;
  }
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p)}/${p.len}`;
}

/** The prefix in a form usable inside a key: "100.64.0.0-26", "fd00::-64". */
export function prefixKey(p: Prefix): string {
  return `${formatAddress(p)}-${p.len}`;
}

export function parsePrefixKey(key: string): Prefix {
  const dash = key.lastIndexOf('-');
  if (dash < 0) throw invalid(key, 'prefix key (missing "-length")');
  return parsePrefix(`${key.slice(0, dash)}/${key.slice(dash + 1)}`);
}

/** The prefix of length `len` containing address `addr`. */
export function prefixOf(a: Address, len: number): Prefix {
  if (!Number.isInteger(len) || len < 0 || len > maxLen(a.family)) {
    throw new TrellisError(ErrorCode.InvalidCidr, `prefix length ${len} out of range for IPv${a.family}`);
  }
  return { family: a.family, addr: a.addr & ~hostMask(a.family, len), len };
}

/** Number of addresses in the prefix. */
export function size(p: Prefix): bigint {
  return 1n << BigInt(maxLen(p.family) - p.len);
}

export function lastAddress(p: Prefix): bigint {
  return p.addr | hostMask(p.family, p.len);
}

export function equal(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.addr === b.addr && a.len === b.len;
}

/** Total order: family, then first address, then shorter (containing) prefixes first. */
export function comparePrefix(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.addr !== b.addr) return a.addr < b.addr ? -1 : 1;
  return a.len - b.len;
}

/** True when `inner` (a prefix or a single address) lies entirely inside `outer`. */
export function contains(outer: Prefix, inner: Prefix | Address): boolean {
  if (outer.family !== inner.family) return false;
  const innerLen = 'len' in inner ? inner.len : maxLen(inner.family);
  if (innerLen < outer.len) return false;
  return (inner.addr & ~hostMask(outer.family, outer.len)) === outer.addr;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return a.len <= b.len ? contains(a, b) : contains(b, a);
}

/** The enclosing prefix of length `len` (default: one bit shorter). */
export function supernet(p: Prefix, len = p.len - 1): Prefix {
  if (!Number.isInteger(len) || len < 0 || len > p.len) {
    throw new TrellisError(ErrorCode.InvalidCidr, `cannot take /${len} supernet of ${formatPrefix(p)}`);
  }
  return prefixOf(p, len);
}

/** The other half of this prefix's supernet. */
export function sibling(p: Prefix): Prefix {
  if (p.len === 0) throw new TrellisError(ErrorCode.InvalidCidr, `${formatPrefix(p)} has no sibling`);
  return { family: p.family, addr: p.addr ^ size(p), len: p.len };
}

/** The two halves of a prefix. */
export function halves(p: Prefix): [Prefix, Prefix] {
  if (p.len >= maxLen(p.family)) {
    throw new TrellisError(ErrorCode.InvalidCidr, `${formatPrefix(p)} cannot be split`);
  }
  const len = p.len + 1;
  return [
    { family: p.family, addr: p.addr, len },
    { family: p.family, addr: p.addr | (1n << BigInt(maxLen(p.family) - len)), len },
  ];
}

/** Upper bound on the number of prefixes `split` will materialise. */
export const MAX_SPLIT = 1 << 20;

/** Split `p` into all its sub-prefixes of length `len`, in address order. */
export function split(p: Prefix, len: number): Prefix[] {
  if (!Number.isInteger(len) || len < p.len || len > maxLen(p.family)) {
    throw new TrellisError(ErrorCode.InvalidCidr, `cannot split ${formatPrefix(p)} into /${len}`);
  }
  if (len - p.len > 20) {
    throw new TrellisError(
      ErrorCode.InvalidCidr,
      `splitting ${formatPrefix(p)} into /${len} gives more than ${MAX_SPLIT} prefixes`,
    );
  }
  const count = 1 << (len - p.len);
  const step = 1n << BigInt(maxLen(p.family) - len);
  const out: Prefix[] = new Array<Prefix>(count);
  for (let i = 0; i < count; i++) out[i] = { family: p.family, addr: p.addr + BigInt(i) * step, len };
  return out;
}

/** Sort and drop prefixes contained in another one of the set (and duplicates). */
function disjointSorted(prefixes: readonly Prefix[]): Prefix[] {
  const sorted = [...prefixes].sort(comparePrefix);
  const out: Prefix[] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && contains(last, p)) continue;
    out.push(p);
  }
  return out;
}

/**
 * The minimal exact cover of the union of `prefixes`: the fewest prefixes
 * covering exactly the same addresses, sorted (IPv4 before IPv6).
 */
export function aggregate(prefixes: readonly Prefix[]): Prefix[] {
  const stack: Prefix[] = [];
  for (const p of disjointSorted(prefixes)) {
    let cur = p;
    for (;;) {
      const top = stack[stack.length - 1];
      if (
        top === undefined ||
        top.len !== cur.len ||
        top.family !== cur.family ||
        cur.len === 0 ||
        (top.addr & size(top)) !== 0n ||
        top.addr + size(top) !== cur.addr
      ) {
        break;
      }
      stack.pop();
      cur = { family: cur.family, addr: top.addr, len: cur.len - 1 };
    }
    stack.push(cur);
  }
  return stack;
}

/** The addresses of `p` not in any of `holes`, as the fewest prefixes, in address order. */
export function subtract(p: Prefix, holes: readonly Prefix[]): Prefix[] {
  const relevant = disjointSorted(holes.filter((h) => overlaps(p, h)));
  const out: Prefix[] = [];
  const walk = (q: Prefix, hs: Prefix[]): void => {
    if (hs.length === 0) {
      out.push(q);
      return;
    }
    if (hs.some((h) => contains(h, q))) return;
    const [lo, hi] = halves(q);
    walk(lo, hs.filter((h) => overlaps(lo, h)));
    walk(hi, hs.filter((h) => overlaps(hi, h)));
  };
  walk(p, relevant);
  return out;
}

/** The i-th address of a prefix (0-based), e.g. for enumerating a block. */
export function nthAddress(p: Prefix, i: bigint): Address {
  if (i < 0n || i >= size(p)) {
    throw new TrellisError(ErrorCode.InvalidCidr, `address #${i} is outside ${formatPrefix(p)}`);
  }
  return { family: p.family, addr: p.addr + i };
}
