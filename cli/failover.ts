import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ErrorCodes, IsthmusError, messageOf } from '../core/index.ts';
import type { Kube, Obj } from './kube-apply.ts';
import { execIn } from './pods.ts';

/**
 * `verify --disruptive`: gateway failover the way a user causes one, `kubectl drain` of the
 * active gateway's node as far as the gateway goes — the node is cordoned and the gateway pod
 * on it deleted (its replacement cannot come back there, so the passive gateway must take
 * over; were it deleted alone, a quick restart on the same node would resume the Lease as the
 * same holder and nothing would fail over) — and uncordoned afterwards, whatever happened,
 * unless it was cordoned before; meanwhile a client
 * pod probes a server pod by IP and the Service by its clusterset name without pause. The
 * outage is measured on this machine's clock from the probes' answers as they arrive: the
 * longest gap between two answers from the last one before the kill to the first one after
 * the new gateway took over. A cluster with one gateway node cannot fail over: refused
 * before anything is made.
 */
const NS = 'isthmus-system';
export const GATEWAY_LABEL = 'isthmus.dev/gateway-capable';
const GATEWAY_PODS = 'app.kubernetes.io/name=isthmus-gateway';

export interface Sample { readonly t: number; readonly ok: boolean }

/**
 * The outage seen by one probe: the longest gap between consecutive answers, counted from
 * the last answer at or before `killedAt` to the first answer at or after `takenOverAt`;
 * undefined when no answer came after the take-over (not recovered) or none before the kill
 * (no baseline). Pure; samples in order of arrival.
 */
export function outageMs(samples: readonly Sample[], killedAt: number, takenOverAt: number): number | undefined {
  const oks = samples.filter((s) => s.ok).map((s) => s.t);
  const before = oks.filter((t) => t <= killedAt).pop();
  const after = oks.find((t) => t >= takenOverAt);
  if (before === undefined || after === undefined) return undefined;
  const span = oks.filter((t) => t >= before && t <= after);
  let worst = 0;
  for (let i = 1; i < span.length; i++) worst = Math.max(worst, (span[i] as number) - (span[i - 1] as number));
  return worst;
}

interface GatewayObj extends Obj { status?: { haStatus?: string } }

/** The gateway nodes of a cluster, and which Gateway is active; FAILED_PRECONDITION when it cannot fail over. */
export async function failoverReady(kube: Kube): Promise<{ nodes: string[]; active: string }> {
  const nodes = (await kube.core.listNode({ labelSelector: `${GATEWAY_LABEL}=true` })).items.map((n) => n.metadata?.name ?? '').sort();
  if (nodes.length < 2) {
    throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `verify --disruptive: ${kube.context} has ${nodes.length} gateway node${nodes.length === 1 ? '' : 's'} (${nodes.join(', ') || 'none'}), so its gateway cannot fail over; `
      + `label a second node and join again (isthmus join broker-info.json --context ${kube.context} --gateway-nodes ${[...nodes, 'NODE'].join(',')}), or run verify without --disruptive`);
  }
  const gws = await kube.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', NS);
  const active = gws.find((g) => g.status?.haStatus === 'active')?.metadata?.name;
  const passive = gws.filter((g) => g.status?.haStatus === 'passive').map((g) => g.metadata?.name ?? '');
  if (active === undefined || passive.length === 0) {
    throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `verify --disruptive: ${kube.context} has gateway nodes ${nodes.join(', ')} but ${active === undefined ? 'no active gateway' : 'no passive gateway waiting'}; `
      + `check its gateway pods (kubectl --context ${kube.context} -n ${NS} get pods -l ${GATEWAY_PODS} -o wide) and run verify without --disruptive until both run`);
  }
  return { nodes, active };
}

/** A probe loop for the client pod: one line "ok" or "fail" per attempt, for `seconds`. */
export function probeScript(url: string, seconds: number): string[] {
  return ['sh', '-c', `end=$(( $(date +%s) + ${seconds} )); while [ "$(date +%s)" -lt "$end" ]; do if curl -s -o /dev/null --max-time 1 '${url}'; then echo ok; else echo fail; fi; sleep 0.2; done`];
}

async function uncordon(kube: Kube, node: string): Promise<void> {
  await kube.core.patchNode({ name: node, body: { spec: { unschedulable: false } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)).catch((err: unknown) => { throw kube.wrap(err, `uncordon node ${node} (kubectl uncordon ${node})`); });
}

export interface FailoverResult { readonly from: string; readonly to: string; readonly takeoverMs: number; readonly outages: Readonly<Record<string, number>> }

/**
 * Fails over `target`'s gateway while `client` (in `client.kube`) probes each of `urls`;
 * TIMEOUT when no other gateway becomes active, or a probe gets no answer, within `timeoutMs`
 * (each phase).
 * Returns after the Deployment has all its gateway pods ready again.
 */
export async function failover(target: Kube, client: { kube: Kube; namespace: string; pod: string }, urls: Readonly<Record<string, string>>, timeoutMs: number): Promise<FailoverResult> {
  const { active } = await failoverReady(target);
  const stop = new AbortController();
  const samples = new Map<string, Sample[]>(Object.keys(urls).map((k) => [k, []]));
  const seconds = Math.ceil((3 * timeoutMs) / 1000) + 30;
  const probes = Object.entries(urls).map(([k, url]) => execIn(client.kube, client.namespace, client.pod, probeScript(url, seconds), (l) => samples.get(k)?.push({ t: Date.now(), ok: l.trim() === 'ok' }), stop.signal).catch(() => ''));
  let cordoned: string | undefined;
  // each phase (answers before, take-over, answers after, pods ready again) has its own timeoutMs
  const until = async (what: string, check: () => Promise<boolean> | boolean): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new IsthmusError(ErrorCodes.TIMEOUT, `${what}: not within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await until('every probe answered before the failover', () => [...samples.values()].every((s) => s.some((x) => x.ok)));
    const pods = await target.core.listNamespacedPod({ namespace: NS, labelSelector: GATEWAY_PODS, fieldSelector: `spec.nodeName=${active}` });
    const pod = pods.items[0]?.metadata?.name;
    if (pod === undefined) throw new IsthmusError(ErrorCodes.NOT_FOUND, `no gateway pod on ${active}, the node of ${target.context}'s active gateway`);
    const node = await target.core.readNode({ name: active });
    if (node.spec?.unschedulable !== true) {
      await target.core.patchNode({ name: active, body: { spec: { unschedulable: true } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)).catch((err: unknown) => { throw target.wrap(err, `cordon node ${active}`); });
      cordoned = active;
    }
    const killedAt = Date.now();
    await target.core.deleteNamespacedPod({ name: pod, namespace: NS }).catch((err: unknown) => { throw target.wrap(err, `delete the gateway pod ${pod}`); });
    let to = '';
    await until(`another gateway of ${target.context} active after ${pod} on ${active} was deleted`, async () => {
      const gws = await target.list<GatewayObj>('isthmus.dev/v1alpha1', 'Gateway', NS).catch(() => []);
      to = gws.find((g) => g.status?.haStatus === 'active' && g.metadata?.name !== active)?.metadata?.name ?? '';
      return to !== '';
    });
    const takenOverAt = Date.now();
    await until('the probes answered again after the take-over', () => [...samples.values()].every((s) => s.some((x) => x.ok && x.t >= takenOverAt)));
    const outages: Record<string, number> = {};
    for (const [k, s] of samples) outages[k] = outageMs(s, killedAt, takenOverAt) ?? Number.NaN;
    if (cordoned !== undefined) await uncordon(target, cordoned);
    cordoned = undefined;
    await until(`the gateway pods of ${target.context} ready again`, async () => {
      const d = await target.apps.readNamespacedDeployment({ name: 'isthmus-gateway', namespace: NS }).catch(() => undefined);
      const ps = await target.core.listNamespacedPod({ namespace: NS, labelSelector: GATEWAY_PODS }).catch(() => undefined);
      const ready = (ps?.items ?? []).filter((p) => p.metadata?.name !== pod && p.metadata?.deletionTimestamp === undefined && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);
      return d !== undefined && ready.length >= (d.spec?.replicas ?? 1);
    });
    return { from: active, to, takeoverMs: takenOverAt - killedAt, outages };
  } catch (err) {
    throw err instanceof IsthmusError ? err : new IsthmusError(ErrorCodes.INTERNAL, messageOf(err), { cause: err });
  } finally {
    stop.abort();
    await Promise.all(probes);
    if (cordoned !== undefined) await uncordon(target, cordoned).catch(() => undefined);
  }
}
