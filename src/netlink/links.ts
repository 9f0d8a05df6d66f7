// Interface name ↔ index lookup, cached, refreshed from an RTM_GETLINK dump
// when a lookup misses.
//
// Invariants: a lookup that misses triggers at most one dump (concurrent
// misses share it) and then answers from the fresh table; `undefined` means
// the kernel has no such link right now. A cached answer can be stale (a
// device deleted and re-created under the same name gets a new index), so
// callers that get ENODEV for a cached index call `refresh()` and retry once.

import type { RtNetlinkSocket } from 'netlink';

export interface Link {
  readonly index: number;
  readonly name: string;
}

/** Dumps every link of the socket's network namespace. */
export async function dumpLinks(socket: RtNetlinkSocket): Promise<Link[]> {
  const msgs = await socket.getLinks();
  const links: Link[] = [];
  for (const m of msgs) {
    const index = m.data.index;
    const name = m.attrs.ifname;
    if (typeof index === 'number' && typeof name === 'string') links.push({ index, name });
  }
  return links;
}

export class LinkCache {
  private byName = new Map<string, number>();
  private byIndex = new Map<number, string>();
  private inFlight: Promise<void> | undefined;
  private dumps = 0;

  constructor(private readonly dump: () => Promise<Link[]>) {}

  /** Number of dumps done so far. */
  get refreshes(): number {
    return this.dumps;
  }

  /** Re-reads the link table (joins a dump already under way). */
  refresh(): Promise<void> {
    this.inFlight ??= (async () => {
      try {
        const links = await this.dump();
        this.dumps++;
        this.byName = new Map(links.map((l) => [l.name, l.index]));
        this.byIndex = new Map(links.map((l) => [l.index, l.name]));
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  /** The cached name of link `index`, without any dump. */
  cachedName(index: number): string | undefined {
    return this.byIndex.get(index);
  }

  async indexOf(name: string): Promise<number | undefined> {
    const hit = this.byName.get(name);
    if (hit !== undefined) return hit;
    await this.refresh();
    return this.byName.get(name);
  }

  async nameOf(index: number): Promise<string | undefined> {
    const hit = this.byIndex.get(index);
    if (hit !== undefined) return hit;
    await this.refresh();
    return this.byIndex.get(index);
  }
}
