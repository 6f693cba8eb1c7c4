import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { ErrorCodes, IsthmusError } from '../index.ts';
import { KINDS, type AnyRecord, type BrokerEvent, type Kind } from './types.ts';

/**
 * broker.proto loaded once (proto-loader: field names as in the proto, int64 as
 * strings, enums as names, defaults filled in). Each method's serializers are wrapped:
 *  - requests that fail to decode become a MalformedRequest value instead of an
 *    exception, so the handler answers INVALID_ARGUMENT (grpc-js would say INTERNAL);
 *  - a response given as a Buffer is sent as is, so one watch event is encoded once
 *    for all its watchers.
 */
export const PROTO_PATH = findProto();

/** broker.proto beside this module, or (when running the tsc output in dist/) in the source tree. */
function findProto(): string {
  const candidates = [new URL('./broker.proto', import.meta.url), new URL('../../../core/broker-api/broker.proto', import.meta.url)].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p));
  if (found === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `broker.proto not found (looked in ${candidates.join(', ')}): ship core/broker-api/broker.proto with the build`);
  return found;
}
export const SERVICE_NAME = 'isthmus.broker.v1.Broker';

const packageDefinition = loadSync(PROTO_PATH, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  arrays: true,
  objects: false,
  oneofs: true,
});

export interface MalformedRequest {
  readonly malformed: string;
}

export function isMalformed(v: unknown): v is MalformedRequest {
  return typeof v === 'object' && v !== null && 'malformed' in v && Object.keys(v).length === 1;
}

type AnyMethod = MethodDefinition<object, object>;

export const METHOD_NAMES = [
  'RegisterCluster', 'UnregisterCluster', 'PublishEndpoint', 'RenewEndpoint', 'WithdrawEndpoint',
  'PublishExport', 'WithdrawExport', 'PublishPolicy', 'WithdrawPolicy', 'PublishIdentities', 'WithdrawIdentities', 'PublishPolicyStatus', 'WithdrawPolicyStatus', 'List', 'Watch',
] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

function loadMethods(): Record<MethodName, AnyMethod> {
  const service = packageDefinition[SERVICE_NAME] as unknown as Record<string, AnyMethod> | undefined;
  if (service === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `${PROTO_PATH} does not define ${SERVICE_NAME}`);
  const out = {} as Record<MethodName, AnyMethod>;
  for (const name of METHOD_NAMES) {
    const m = service[name];
    if (m === undefined) throw new IsthmusError(ErrorCodes.INTERNAL, `${SERVICE_NAME} lacks method ${name}`);
    out[name] = m;
  }
  return out;
}

/** The raw (unwrapped) method definitions: serialize/deserialize any message. */
export const methods: Readonly<Record<MethodName, AnyMethod>> = loadMethods();

/** The service definition the server registers, with the wrapped serializers. */
export function serverServiceDefinition(): Record<string, AnyMethod> {
  const def: Record<string, AnyMethod> = {};
  for (const name of METHOD_NAMES) {
    const m = methods[name];
    def[name] = {
      ...m,
      requestDeserialize: (buf: Buffer): object => {
        try {
          return m.requestDeserialize(buf);
        } catch (err) {
          return { malformed: err instanceof Error ? err.message : String(err) } satisfies MalformedRequest;
        }
      },
      responseSerialize: (value: object): Buffer => (Buffer.isBuffer(value) ? value : m.responseSerialize(value)),
    };
  }
  return def;
}

/** int64 (string from the wire, or number) to a number; throws INVALID_ARGUMENT when not a whole number ≥ 0. */
export function toRevision(v: unknown, field: string): number {
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${field} must be a whole number ≥ 0, got ${JSON.stringify(v)}`);
  return n;
}

/** Validates a list of kinds from a request; an empty list means all kinds. */
export function toKinds(v: unknown): Kind[] {
  const list = Array.isArray(v) ? (v as unknown[]) : [];
  if (list.length === 0) return [...KINDS];
  const out = new Set<Kind>();
  for (const k of list) {
    if (typeof k !== 'string' || !(KINDS as readonly string[]).includes(k)) {
      throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `unknown kind ${JSON.stringify(k)}: use ${KINDS.join(', ')}`);
    }
    out.add(k as Kind);
  }
  return [...out];
}

const RECORD_FIELD: Readonly<Record<Kind, 'cluster' | 'endpoint' | 'export' | 'policy' | 'identity' | 'policy_status'>> = {
  CLUSTER: 'cluster', ENDPOINT: 'endpoint', EXPORT: 'export', POLICY: 'policy', IDENTITY: 'identity', POLICY_STATUS: 'policy_status',
};

/** An event as the proto message object. */
export function eventMessage(e: BrokerEvent): object {
  return { type: e.type, kind: e.kind, key: e.key, revision: String(e.revision), record: { [RECORD_FIELD[e.kind]]: e.record } };
}

/** An event message received by a client, back to a BrokerEvent. */
export function eventFromMessage(m: unknown): BrokerEvent {
  const o = m as { type?: unknown; kind?: unknown; key?: unknown; revision?: unknown; record?: Record<string, unknown> | null };
  const kind = toKinds([o.kind])[0] as Kind;
  const record = o.record?.[RECORD_FIELD[kind]];
  if (record === undefined || record === null || typeof o.key !== 'string') {
    throw new IsthmusError(ErrorCodes.INTERNAL, `broker sent an event for ${String(o.key)} without its ${RECORD_FIELD[kind]} record`);
  }
  return { type: o.type === 'DELETE' ? 'DELETE' : 'PUT', kind, key: o.key, revision: toRevision(o.revision, 'revision'), record: record as AnyRecord };
}
