import { CoordinationV1Api } from '@kubernetes/client-node';
import type { Kube } from './kube-apply.ts';
import type { Finding } from './diagnose.ts';

/**
 * Clock skew, read from what the apiservers already say: the HTTP Date header of a list of
 * the node Leases gives an apiserver's clock (1 s resolution; the request's round trip adds to
 * the uncertainty), and each kubelet renews its Lease with its own clock every few seconds, so
 * a renewTime ahead of the apiserver's clock, or older than the Lease's duration on a node that
 * is Ready, is that node's clock off. Clusters are compared pairwise, net of the uncertainty:
 * beyond `thresholdMs` a warning, beyond a minute a failure (certificates, join tokens and the
 * broker's leases are timed). Sampling reads; the verdicts are pure.
 */
export const DEFAULT_SKEW_MS = 5_000;
const FAIL_SKEW_MS = 60_000;
const WHAT_TO_DO = 'synchronise the clocks (chrony or systemd-timesyncd against the same NTP servers)';

export interface ClockSample {
  readonly cluster: string;
  /** the apiserver's clock minus this machine's, ms */
  readonly offsetMs: number;
  /** ± ms the offset may be off (Date's resolution and the round trip) */
  readonly uncertaintyMs: number;
  /** per node: its clock minus the apiserver's, as far as its Lease tells (0 when in range) */
  readonly nodes: readonly { readonly node: string; readonly offsetMs: number }[];
}

/** A node's clock against the apiserver's from its Lease: renewTime ahead of `serverNow`, or older than `durationMs` while the node is Ready. Pure. */
export function nodeOffsetMs(renewTime: number, serverNow: number, durationMs: number, ready: boolean, uncertaintyMs: number): number {
  if (renewTime > serverNow + uncertaintyMs) return renewTime - serverNow;
  if (ready && renewTime < serverNow - durationMs - uncertaintyMs) return renewTime - (serverNow - durationMs);
  return 0;
}

const secondsText = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Findings from the samples, one per cluster pair and per node off. Pure. */
export function clockFindings(samples: readonly ClockSample[], thresholdMs: number): Finding[] {
  const out: Finding[] = [];
  const verdict = (ms: number): Finding['verdict'] => (Math.abs(ms) > FAIL_SKEW_MS ? 'fail' : Math.abs(ms) > thresholdMs ? 'warn' : 'ok');
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length; j++) {
      const a = samples[i] as ClockSample;
      const b = samples[j] as ClockSample;
      const unread = [a, b].find((x) => !Number.isFinite(x.uncertaintyMs));
      if (unread !== undefined) {
        out.push({ cluster: `${a.cluster}/${b.cluster}`, check: 'clock skew', verdict: 'warn', detail: `the apiserver of ${unread.cluster} sent no Date header, so its clock was not compared: check it by hand (date on its control plane)` });
        continue;
      }
      const skew = a.offsetMs - b.offsetMs;
      const sure = Math.max(0, Math.abs(skew) - a.uncertaintyMs - b.uncertaintyMs) * Math.sign(skew);
      const v = verdict(sure);
      out.push({
        cluster: `${a.cluster}/${b.cluster}`, check: 'clock skew', verdict: v,
        detail: v === 'ok' ? `apiserver clocks within ${secondsText(Math.abs(skew) + a.uncertaintyMs + b.uncertaintyMs)}`
          : `the apiserver clock of ${a.cluster} is ${secondsText(Math.abs(skew))} ${skew > 0 ? 'ahead of' : 'behind'} ${b.cluster}'s (more than ${secondsText(thresholdMs)}): ${WHAT_TO_DO} on the control planes and nodes of both`,
      });
    }
  }
  for (const s of samples) {
    for (const n of s.nodes) {
      const v = verdict(n.offsetMs);
      if (v !== 'ok') out.push({ cluster: s.cluster, check: 'clock skew', verdict: v, detail: `node ${n.node}'s clock is at least ${secondsText(Math.abs(n.offsetMs))} ${n.offsetMs > 0 ? 'ahead of' : 'behind'} its apiserver's (from its Lease): ${WHAT_TO_DO} on ${n.node}` });
    }
  }
  return out;
}

/** Three reads of the node Leases; the one with the shortest round trip is kept. */
export async function clockSample(kube: Kube): Promise<ClockSample> {
  const api = kube.kc.makeApiClient(CoordinationV1Api);
  let best: { rtt: number; offsetMs: number; serverNow: number; leases: { node: string; renew: number; durationMs: number }[] } | undefined;
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const res = await api.listNamespacedLeaseWithHttpInfo({ namespace: 'kube-node-lease' });
    const t1 = Date.now();
    const date = Date.parse(res.headers['date'] ?? '');
    if (Number.isNaN(date)) continue;
    // Date truncates to the second: the server's time was in [date, date + 1 s)
    const serverNow = date + 500;
    if (best === undefined || t1 - t0 < best.rtt) {
      best = {
        rtt: t1 - t0, offsetMs: serverNow - (t0 + t1) / 2, serverNow,
        leases: res.data.items.map((l) => ({ node: l.metadata?.name ?? '', renew: new Date(l.spec?.renewTime as unknown as string | Date).getTime(), durationMs: (l.spec?.leaseDurationSeconds ?? 40) * 1000 })),
      };
    }
  }
  if (best === undefined) return { cluster: kube.context, offsetMs: 0, uncertaintyMs: Number.POSITIVE_INFINITY, nodes: [] };
  const uncertaintyMs = 500 + best.rtt / 2;
  const ready = new Set((await kube.core.listNode()).items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true).map((n) => n.metadata?.name ?? ''));
  const serverNow = best.serverNow;
  return {
    cluster: kube.context, offsetMs: best.offsetMs, uncertaintyMs,
    nodes: best.leases.filter((l) => !Number.isNaN(l.renew)).map((l) => ({ node: l.node, offsetMs: nodeOffsetMs(l.renew, serverNow, l.durationMs, ready.has(l.node), uncertaintyMs) })),
  };
}
