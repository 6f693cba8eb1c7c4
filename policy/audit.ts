import { systemClock, type Clock } from '../core/index.ts';
import type { AuditTag, LocalPod } from './compile.ts';
import type { SourcePod } from './evaluate.ts';
import type { AuditElement } from './table.ts';

/**
 * The audit log of cross-cluster flows: one JSON line per flow that a policy allowed or
 * denied, written once — a flow stays in its audit set for the set's timeout, and a line
 * is written when it first appears there (again only after it has left the set). Lines
 * beyond `maxPerSecond` (a token bucket with as large a burst) are not written but counted
 * (`suppressed`), so a scan cannot flood the log shipper. Every flow seen is counted per
 * policy, rule and verdict whether or not its line was written.
 *
 * A flow whose source has no identity yet is held back for up to `identityWaitMs`: a new
 * remote pod's identity reaches this node a moment after its first packets can (its
 * cluster publishes it, the broker relays it, the controller mirrors it), and the line is
 * written once, so it waits for the identity rather than naming no one. Its `time` is when
 * the flow was first seen. A source that never gets one (a remote node's own address) is
 * written without, once the wait is over.
 *
 * A line (stable field names, for log shippers):
 * {"time","verdict","policy","rule","source":{"cluster","namespace","pod","labels","ip"},
 *  "destination":{"namespace","pod","ip","protocol","port"}}
 * A source without a published identity has cluster "" and the other fields empty.
 */
export interface AuditLine {
  readonly time: string;
  readonly verdict: 'Allow' | 'Deny';
  readonly policy: string;
  readonly rule: string;
  readonly source: { cluster: string; namespace: string; pod: string; labels: Readonly<Record<string, string>>; ip: string };
  readonly destination: { namespace: string; pod: string; ip: string; protocol: string; port: number | null };
}

export interface AuditLogOptions {
  /** Where each JSON line goes (stdout or a file for log shippers). */
  readonly write: (line: string) => void;
  /** Lines per second, and burst (default 100). */
  readonly maxPerSecond?: number;
  readonly clock?: Clock;
  /** Called for every new flow (metrics), written or suppressed. */
  readonly onFlow?: (tag: AuditTag) => void;
  /** How long a flow from a source without an identity waits for one (default 5000 ms). */
  readonly identityWaitMs?: number;
}

const PORTED = new Set(['tcp', 'udp', 'sctp']);

/** A flow about to be written: when it was first seen, its set element and what the set means. */
interface Waiting {
  readonly first: number;
  readonly element: AuditElement;
  readonly tag: AuditTag;
}

export class AuditLog {
  readonly #o: AuditLogOptions;
  readonly #clock: Clock;
  readonly #rate: number;
  #tokens: number;
  #at: number;
  readonly #identityWaitMs: number;
  #seen = new Set<string>();
  /** Flows held back for their source's identity, by key. */
  #waiting = new Map<string, Waiting>();
  #suppressed = 0;

  constructor(options: AuditLogOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#rate = options.maxPerSecond ?? 100;
    this.#identityWaitMs = options.identityWaitMs ?? 5000;
    this.#tokens = this.#rate;
    this.#at = this.#clock.now();
  }

  /** Lines not written because of the rate limit, since start. */
  get suppressed(): number {
    return this.#suppressed;
  }

  #take(): boolean {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /**
   * Takes everything now in the audit sets; writes a line for each flow not seen in the
   * previous call (once its source's identity is known or the wait is over; a waiting flow
   * that left its set meanwhile — the ruleset was replaced — is written at once, so none is
   * lost). Returns the lines written.
   */
  observe(elements: readonly AuditElement[], tags: ReadonlyMap<string, AuditTag>, remote: ReadonlyMap<string, SourcePod>, local: ReadonlyMap<string, LocalPod>): AuditLine[] {
    const now = new Set<string>();
    const waiting = new Map<string, Waiting>();
    const at = this.#clock.now();
    const written: AuditLine[] = [];
    for (const e of elements) {
      const tag = tags.get(e.set);
      if (tag === undefined) continue;
      const key = `${tag.policy}|${tag.rule}|${tag.action}|${e.saddr}|${e.daddr}|${e.protocol}|${e.port}`;
      if (this.#seen.has(key)) {
        now.add(key);
        continue;
      }
      const first = this.#waiting.get(key)?.first ?? at;
      if (!remote.has(e.saddr) && at - first < this.#identityWaitMs) {
        waiting.set(key, { first, element: e, tag });
        continue;
      }
      now.add(key);
      this.#emit({ first, element: e, tag }, remote, local, written);
    }
    for (const [key, w] of this.#waiting) if (!waiting.has(key) && !now.has(key)) this.#emit(w, remote, local, written);
    this.#waiting = waiting;
    this.#seen = now;
    return written;
  }

  /** Counts the flow and writes its line, unless the rate limit holds it back. */
  #emit(w: Waiting, remote: ReadonlyMap<string, SourcePod>, local: ReadonlyMap<string, LocalPod>, written: AuditLine[]): void {
    const { element: e, tag } = w;
    this.#o.onFlow?.(tag);
    if (!this.#take()) {
      this.#suppressed++;
      return;
    }
    const s = remote.get(e.saddr);
    const d = local.get(e.daddr);
    const line: AuditLine = {
      time: new Date(w.first).toISOString(),
      verdict: tag.action,
      policy: tag.policy,
      rule: tag.rule,
      source: { cluster: s?.cluster ?? '', namespace: s?.namespace ?? '', pod: s?.pod ?? '', labels: s?.labels ?? {}, ip: e.saddr },
      destination: { namespace: d?.namespace ?? '', pod: d?.name ?? '', ip: e.daddr, protocol: e.protocol, port: PORTED.has(e.protocol) ? e.port : null },
    };
    this.#o.write(JSON.stringify(line));
    written.push(line);
  }
}
