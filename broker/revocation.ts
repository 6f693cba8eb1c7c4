import type { Etcd3, Watcher } from 'etcd3';
import { ErrorCodes, IsthmusError, messageOf, type Logger } from '../core/index.ts';
import { PREFIX, prefixEnd } from './keys.ts';

/**
 * The revocation list: cluster ids and certificate serials the broker refuses on every
 * request, whatever the certificate's chain and lifetime say. It lives in etcd (so
 * every replica sees it at once) under REVOKED_DIR: `cluster/<id>` and
 * `serial/<HEX>`, each valued `{"at": …, "reason": …}`; deleting the key lifts it.
 * Each replica loads it at start, follows it with an etcd watch and reloads it every
 * `reloadMs` in case a watch event was missed; until the first load the broker does
 * not serve.
 */
export const REVOKED_DIR = `${PREFIX}revoked/`;

export function revokedKey(what: { clusterId: string } | { serial: string }): string {
  return 'clusterId' in what ? `${REVOKED_DIR}cluster/${what.clusterId}` : `${REVOKED_DIR}serial/${normalizeSerial(what.serial)}`;
}

/** "0a:1B:…" or "0A1B…" → "0A1B…"; INVALID_ARGUMENT when it is not hex. */
export function normalizeSerial(serial: string): string {
  const hex = serial.replace(/:/g, '').toUpperCase().replace(/^0+(?=.)/, '');
  if (!/^[0-9A-F]{1,64}$/.test(hex)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `${JSON.stringify(serial)} is not a certificate serial (hex, as \`isthmus certs show\` prints it)`);
  return hex;
}

/** Writes a revocation (idempotent). */
export async function revoke(etcd: Etcd3, what: { clusterId: string } | { serial: string }, reason: string, now = new Date()): Promise<string> {
  const key = revokedKey(what);
  await etcd.put(key).value(JSON.stringify({ at: now.toISOString(), reason }));
  return key;
}

export class RevocationList {
  readonly #etcd: Etcd3;
  readonly #logger: Logger;
  readonly #reloadMs: number;
  #clusters = new Set<string>();
  #serials = new Set<string>();
  #watcher: Watcher | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(etcd: Etcd3, logger: Logger, reloadMs = 30_000) {
    this.#etcd = etcd;
    this.#logger = logger;
    this.#reloadMs = reloadMs;
  }

  get size(): number {
    return this.#clusters.size + this.#serials.size;
  }

  async start(): Promise<void> {
    await this.#reload();
    this.#watcher = await this.#etcd.watch().prefix(REVOKED_DIR).create();
    this.#watcher.on('put', (kv) => this.#apply(kv.key.toString(), true));
    this.#watcher.on('delete', (kv) => this.#apply(kv.key.toString(), false));
    this.#watcher.on('error', (err) => this.#logger.debug({ err: messageOf(err) }, 'revocation watch error; it reconnects'));
    this.#timer = setInterval(() => {
      this.#reload().catch((err: unknown) => this.#logger.warn({ err: messageOf(err) }, 'cannot reload the revocation list; keeping the last one'));
    }, this.#reloadMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#watcher?.cancel().catch(() => undefined);
  }

  async #reload(): Promise<void> {
    const res = await this.#etcd.kv.range({ key: Buffer.from(REVOKED_DIR), range_end: prefixEnd(REVOKED_DIR), keys_only: true });
    const clusters = new Set<string>();
    const serials = new Set<string>();
    for (const kv of res.kvs) this.#sort(kv.key.toString(), clusters, serials);
    this.#clusters = clusters;
    this.#serials = serials;
  }

  #sort(key: string, clusters: Set<string>, serials: Set<string>): void {
    const rest = key.slice(REVOKED_DIR.length);
    if (rest.startsWith('cluster/')) clusters.add(rest.slice('cluster/'.length));
    else if (rest.startsWith('serial/')) serials.add(rest.slice('serial/'.length));
  }

  #apply(key: string, revoked: boolean): void {
    if (revoked) this.#sort(key, this.#clusters, this.#serials);
    else {
      const rest = key.slice(REVOKED_DIR.length);
      this.#clusters.delete(rest.replace(/^cluster\//, ''));
      this.#serials.delete(rest.replace(/^serial\//, ''));
    }
    this.#logger.info({ key, revoked }, 'revocation list changed');
  }

  /** Throws UNAUTHENTICATED when the certificate (serial) or the cluster it speaks for is revoked. */
  check(serial: string, clusterId: string | undefined): void {
    if (this.#serials.has(serial.replace(/^0+(?=.)/, ''))) {
      throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, `certificate ${serial} is revoked: issue a new one (\`isthmus certs issue\`)`, { context: { reason: 'revoked' } });
    }
    if (clusterId !== undefined && this.#clusters.has(clusterId)) {
      throw new IsthmusError(ErrorCodes.UNAUTHENTICATED, `cluster ${clusterId} is revoked at this clusterset: an admin lifts it by deleting ${REVOKED_DIR}cluster/${clusterId} in etcd`, { context: { reason: 'revoked' } });
    }
  }
}
