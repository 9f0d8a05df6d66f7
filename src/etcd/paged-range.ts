// Bounded reads of a key prefix: the prefix is read in pages (etcd `limit`,
// then continue from just after the last key), every page at the revision of
// the first one, so the whole read is one consistent snapshot however many
// keys there are. etcd answers a range in one gRPC message, capped at 4 MiB
// by the client: a page that would not fit (RESOURCE_EXHAUSTED) is asked
// again with half as many keys, down to one key (a single value is at most
// etcd's request size, 1.5 MiB by default). No prefix can make a read fail
// for being large.
//
// Values above `maxValueBytes` are not handed to the caller: they are
// reported to `onOversize` (key and size) and skipped, never fatal.

import { Range, type Etcd3, type IKeyValue } from 'etcd3';

export const DEFAULT_PAGE_KEYS = 500;
/** Largest value handed to callers by default: no Trellis record comes near it. */
export const DEFAULT_MAX_VALUE_BYTES = 256 * 1024;

export interface PagedRangeOptions {
  /** Keys asked for per page (halved while a page does not fit a gRPC message). */
  readonly pageKeys?: number;
  /** Read at this revision instead of the current one. */
  readonly revision?: string;
  readonly maxValueBytes?: number;
  readonly onOversize?: (key: string, bytes: number) => void;
}

export interface RangePage {
  readonly kvs: IKeyValue[];
  /** The revision every page of this read is taken at. */
  readonly revision: string;
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  return Range.prefix(prefix).end;
}

function tooLarge(err: unknown): boolean {
  const text = err instanceof Error ? err.message : String(err);
  return /RESOURCE_EXHAUSTED|larger than max/i.test(text);
}

/** The prefix's keys and values, page by page, at one revision. */
export async function* rangePages(client: Etcd3, prefix: string, options: PagedRangeOptions = {}): AsyncGenerator<RangePage> {
  const end = prefixEnd(prefix);
  const maxBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  let pageKeys = Math.max(1, options.pageKeys ?? DEFAULT_PAGE_KEYS);
  let start: Buffer = Buffer.from(prefix);
  let revision = options.revision;
  for (;;) {
    let res;
    try {
      const builder = client.getAll().inRange(new Range(start, end)).limit(pageKeys);
      res = await (revision === undefined ? builder : builder.revision(revision)).exec();
    } catch (err) {
      if (tooLarge(err) && pageKeys > 1) {
        pageKeys = Math.max(1, Math.floor(pageKeys / 2));
        continue;
      }
      throw err;
    }
    revision ??= String(res.header.revision);
    const kvs: IKeyValue[] = [];
    for (const kv of res.kvs) {
      if (kv.value.length > maxBytes) options.onOversize?.(kv.key.toString(), kv.value.length);
      else kvs.push(kv);
    }
    yield { kvs, revision };
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) return;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
}

/** Every key and value under the prefix at one revision (paged underneath). */
export async function readPrefix(client: Etcd3, prefix: string, options: PagedRangeOptions = {}): Promise<RangePage> {
  const kvs: IKeyValue[] = [];
  let revision = options.revision ?? '0';
  for await (const page of rangePages(client, prefix, options)) {
    kvs.push(...page.kvs);
    revision = page.revision;
  }
  return { kvs, revision };
}
