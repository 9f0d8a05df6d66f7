// The JSON shapes of trellisd's IPAM API as the plugin sends and reads them,
// derived from the types generated from proto/trellis/v1/ipam_api.proto.
//
// Invariants:
//  * The generated types are imported with `import type` only: esbuild erases
//    them, so the bundle carries no protobuf runtime and no generated code.
//  * Every field of a response message has an entry in its Spec, and the
//    Spec's keys and kinds are checked against the generated type: a field
//    renamed, removed, added or retyped in the proto is a compile error here.
//  * At run time every field of a Spec must be present with its kind (trellisd
//    emits fields with default values too); a missing or mistyped field is a
//    CniError naming the message and the field, never a silent default.
//    Fields the plugin does not know are ignored (a newer trellisd may add some).
//  * TS field names equal the proto3 JSON names (lowerCamelCase) for every
//    field of this API.

import type {
  AllocateRequest,
  AllocateResponse,
  AllocationEntry,
  AllocationList,
  ApiError,
  Attachment,
  GcRequest,
  GcResponse,
  ReleaseRequest,
  ReleaseResponse,
  Status,
} from '../src/gen/trellis/v1/ipam_api_pb.js';
import { Code, CniError } from './cni.js';

/** A message's fields without protobuf-es's bookkeeping: its JSON shape for this API. */
export type Wire<T> = T extends ReadonlyArray<infer E> ? ReadonlyArray<Wire<E>> : T extends object ? { readonly [K in Exclude<keyof T, '$typeName' | '$unknown'>]: Wire<T[K]> } : T;

/** How a field of type V is checked at run time. */
type Kind<V> = V extends string ? 'string' : V extends number ? 'uint32' : V extends boolean ? 'bool' : V extends ReadonlyArray<string> ? 'string[]' : V extends ReadonlyArray<infer M> ? { readonly list: Spec<M> } : never;

/** One entry per field of message T, with the kind its generated type has. */
export type Spec<T> = { readonly [K in Exclude<keyof T, '$typeName' | '$unknown'>]-?: Kind<T[K]> };

export const ALLOCATE_RESPONSE: Spec<AllocateResponse> = { address: 'string', prefixLength: 'uint32', block: 'string', routeProtocol: 'uint32', routeTable: 'uint32' };
export const RELEASE_RESPONSE: Spec<ReleaseResponse> = { address: 'string' };
export const GC_RESPONSE: Spec<GcResponse> = { released: 'string[]' };
const ALLOCATION_ENTRY: Spec<AllocationEntry> = {
  address: 'string',
  block: 'string',
  containerId: 'string',
  ifName: 'string',
  netns: 'string',
  podNamespace: 'string',
  podName: 'string',
  network: 'string',
  allocatedAt: 'string',
};
export const ALLOCATION_LIST: Spec<AllocationList> = { node: 'string', allocations: { list: ALLOCATION_ENTRY } };
export const STATUS: Spec<Status> = {
  ready: 'bool',
  reason: 'string',
  node: 'string',
  subnet: 'string',
  blocks: 'string[]',
  routeProtocol: 'uint32',
  routeTable: 'uint32',
};
export const API_ERROR: Spec<ApiError> = { code: 'string', message: 'string' };

export type AllocateRequestBody = Wire<AllocateRequest>;
export type ReleaseRequestBody = Wire<ReleaseRequest>;
export type GcRequestBody = Wire<GcRequest>;
export type AttachmentBody = Wire<Attachment>;

type AnySpec = Readonly<Record<string, 'string' | 'uint32' | 'bool' | 'string[]' | { readonly list: AnySpec }>>;

/** Why `value` does not fit `spec`, or undefined when it does. */
function mismatch(value: unknown, spec: AnySpec, at: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${at || 'the body'} is not an object`;
  const obj = value as Record<string, unknown>;
  for (const [field, kind] of Object.entries(spec)) {
    const v = obj[field];
    const where = at === '' ? field : `${at}.${field}`;
    if (v === undefined) return `field "${where}" is missing`;
    if (kind === 'string' || kind === 'bool') {
      if (typeof v !== (kind === 'bool' ? 'boolean' : 'string')) return `field "${where}" is not a ${kind}`;
    } else if (kind === 'uint32') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) return `field "${where}" is not a uint32`;
    } else {
      if (!Array.isArray(v)) return `field "${where}" is not a list`;
      for (let i = 0; i < v.length; i++) {
        const why = kind === 'string[]' ? (typeof v[i] === 'string' ? undefined : `field "${where}[${i}]" is not a string`) : mismatch(v[i], kind.list, `${where}[${i}]`);
        if (why !== undefined) return why;
      }
    }
  }
  return undefined;
}

/** A 2xx answer that does not match its message: trellisd acted on the call, but the plugin cannot read what it did. */
export class MalformedAnswer extends CniError {
  constructor(what: string, why: string) {
    super(Code.TrellisdRefused, `trellisd answered ${what} with a body that does not match the IPAM API: ${why} (are the plugin and trellisd the same version?)`);
  }
}

/** `value` as message T's JSON shape, or a MalformedAnswer (CNI code 106) naming the wrong field. */
export function decode<T>(value: unknown, spec: Spec<T>, what: string): Wire<T> {
  const why = mismatch(value, spec as unknown as AnySpec, '');
  if (why !== undefined) throw new MalformedAnswer(what, why);
  return value as Wire<T>;
}

/** Whether `value` is an ApiError body. */
export function isApiError(value: unknown): value is Wire<ApiError> {
  return mismatch(value, API_ERROR as unknown as AnySpec, '') === undefined;
}
