// Encoding and decoding of the records Trellis stores in etcd.
//
// Records are canonical proto3 JSON of the messages in
// proto/trellis/v1/records.proto (types generated into src/gen/). Decoding
// never throws: it returns either the message or a reason, so a malformed or
// hostile record is skipped and counted by the reader, never fatal.
// Unknown fields are ignored (forward compatible additions); an unknown
// schemaVersion is rejected because its fields may mean something else.
// A rejection names the record type and, when one field is at fault, that
// field (the decoder's own message does not for nested messages such as
// timestamps); it is bounded in length, whatever the value holds.

import { create, fromJson, fromJsonString, toJsonString, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromMs, timestampMs, type Timestamp } from '@bufbuild/protobuf/wkt';

export const SCHEMA_VERSION = 1;

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Build a record with the current schema version set. */
export function makeRecord<D extends DescMessage>(schema: D, init: MessageInitShape<D>): MessageShape<D> {
  return create(schema, { ...(init as object), schemaVersion: SCHEMA_VERSION } as unknown as MessageInitShape<D>);
}

export function encodeRecord<D extends DescMessage>(schema: D, message: MessageShape<D>): string {
  return toJsonString(schema, message);
}

export function decodeRecord<D extends DescMessage>(schema: D, text: string): Decoded<MessageShape<D>> {
  let value: MessageShape<D>;
  try {
    value = fromJsonString(schema, text, { ignoreUnknownFields: true });
  } catch (err) {
    const field = faultyField(schema, text);
    return { ok: false, reason: `not a valid ${schema.name} record: ${field === undefined ? '' : `field ${field}: `}${clip((err as Error).message)}` };
  }
  const version = (value as { schemaVersion?: number }).schemaVersion ?? 0;
  if (version !== SCHEMA_VERSION) {
    return {
      ok: false,
      reason: version === 0 ? `${schema.name} record has no schemaVersion` : `${schema.name} record has unknown schemaVersion ${version} (this trellis reads ${SCHEMA_VERSION})`,
    };
  }
  return { ok: true, value };
}

/** Longest decoder message quoted in a reason. */
const MAX_MESSAGE = 200;

function clip(message: string): string {
  return message.length <= MAX_MESSAGE ? message : `${message.slice(0, MAX_MESSAGE)}…`;
}

/** The first top-level field of the JSON object `text` that does not decode alone, if the text is such an object. */
function faultyField(schema: DescMessage, text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  for (const [name, value] of Object.entries(doc)) {
    try {
      fromJson(schema, { [name]: value } as never, { ignoreUnknownFields: true });
    } catch {
      return JSON.stringify(name.length <= 64 ? name : `${name.slice(0, 64)}…`);
    }
  }
  return undefined;
}

export function msToTimestamp(ms: number): Timestamp {
  return timestampFromMs(ms);
}

export function timestampToMs(ts: Timestamp | undefined): number | undefined {
  return ts === undefined ? undefined : timestampMs(ts);
}

export function timestampToIso(ts: Timestamp | undefined): string {
  return ts === undefined ? '' : timestampDate(ts).toISOString();
}
