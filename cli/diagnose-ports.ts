import { randomBytes } from 'node:crypto';
import type { Endpoint } from '../core/broker-api/index.ts';
import { messageOf } from '../core/index.ts';
import { NAT_PROBE_PORT_NAME, encodeRequest, parseMessage } from '../gateway/nat-probe.ts';
import type { Finding } from './diagnose.ts';
import type { Kube } from './kube-apply.ts';
import { NETSHOOT, execIn, namespaceObject, podObject, podReady } from './pods.ts';

/**
 * Gateway ports reachable between clusters, by probe: from a host-network pod on each
 * cluster's active gateway node (the path cables take), a NAT probe request (the gateway's
 * own protocol, gateway/nat-probe.ts) to the nat-probe UDP port of every other cluster's
 * gateway endpoint, private address then public; the gateway answers with the address it saw.
 * A pair of clusters is fine when both ways answer, or one way when the silent side is behind
 * NAT (its endpoint has another public address, or the other gateway saw its probe come from
 * another address than its own): such a gateway is reached only after it dialled out. One way
 * otherwise is a warning, neither way a failure, each saying which ports to open. The probe pods
 * live in a namespace of their own, deleted afterwards.
 */
export const PROBE_NS = 'isthmus-diagnose';

export interface PortProbe {
  readonly from: string;
  readonly to: string;
  /** the address that answered, or the ones tried */
  readonly target: string;
  readonly answered: boolean;
  /** where the remote gateway saw the probe come from */
  readonly seenAs?: string;
}

/** The addresses to probe of an endpoint, or [] when its gateway publishes no nat-probe port. Pure. */
export function probeAddresses(e: Endpoint): { ip: string; port: number }[] {
  const port = e.ports.find((p) => p.name === NAT_PROBE_PORT_NAME && p.protocol === 'UDP')?.port;
  if (port === undefined || port === 0) return [];
  return [...new Set([e.private_ip, e.public_ip].filter((ip) => ip !== ''))].map((ip) => ({ ip, port }));
}

const behindNat = (e: Endpoint | undefined): boolean => e !== undefined && e.public_ip !== '' && e.public_ip !== e.private_ip;
const portsOf = (e: Endpoint | undefined): string => (e === undefined ? '?' : e.ports.map((p) => `${p.port}/${p.protocol.toLowerCase()}`).join(', '));

/** One finding per pair of clusters that probed each other. Pure. */
export function portFindings(probes: readonly PortProbe[], endpoints: ReadonlyMap<string, Endpoint>): Finding[] {
  const out: Finding[] = [];
  const pairs = new Map<string, PortProbe[]>();
  for (const p of probes) {
    const key = [p.from, p.to].sort().join('/');
    pairs.set(key, [...(pairs.get(key) ?? []), p]);
  }
  for (const [key, ps] of pairs) {
    const ok = ps.filter((p) => p.answered);
    const no = ps.filter((p) => !p.answered);
    const said = (p: PortProbe): string => `${p.from}→${p.to} ${p.target}${p.seenAs === undefined ? '' : ` (seen as ${p.seenAs})`}`;
    if (no.length === 0) out.push({ cluster: key, check: 'gateway ports', verdict: 'ok', detail: `UDP answered: ${ok.map(said).join('; ')}` });
    else if (ok.length > 0) {
      // the side that did not answer is behind NAT when its endpoint says so, or when it probed the other and was seen from another address than its own
      const seenElsewhere = (c: string): boolean => ok.some((p) => p.from === c && p.seenAs !== undefined && p.seenAs.replace(/:\d+$/, '') !== endpoints.get(c)?.private_ip);
      const natted = no.every((p) => behindNat(endpoints.get(p.to)) || seenElsewhere(p.to));
      out.push({
        cluster: key, check: 'gateway ports', verdict: natted ? 'ok' : 'warn',
        detail: `${ok.map(said).join('; ')} answered; ${no.map((p) => `${p.from}→${p.to} ${p.target}`).join('; ')} did not`
          + (natted ? ` (behind NAT: its gateway dials out)` : `: open UDP ${no.map((p) => portsOf(endpoints.get(p.to))).join(', ')} towards ${no.map((p) => p.to).join(', ')}'s gateway nodes, or cables depend on one side dialling`),
      });
    } else {
      out.push({
        cluster: key, check: 'gateway ports', verdict: 'fail',
        detail: `no UDP between the gateway nodes either way (${no.map((p) => `${p.from}→${p.to} ${p.target}`).join('; ')}): open ${[...new Set(no.map((p) => `${p.to}: ${portsOf(endpoints.get(p.to))}`))].join('; ')} (UDP) between the gateway nodes in firewalls and security groups`,
      });
    }
  }
  return out;
}

/** A NAT probe request and the reply it expects, as a shell command for the probe pod. */
export function probeCommand(ip: string, port: number, nonce: string, from: string): string[] {
  return ['sh', '-c', `for i in 1 2 3; do r=$(printf '%s' '${encodeRequest(nonce, from).toString('utf8')}' | socat -t 1 -T 1 - 'UDP:${ip}:${port}'); if [ -n "$r" ]; then echo "$r"; break; fi; done`];
}

/** The address the remote saw us as, from the probe pod's output, when it holds our nonce's reply. Pure. */
export function parseProbeReply(out: string, nonce: string): string | undefined {
  for (const line of out.split(/(?=isthmus-nat\/1 )/)) {
    const m = parseMessage(Buffer.from(line.trim(), 'utf8'));
    if (m?.type === 'seen' && m.nonce === nonce) return `${m.seen.ip}:${m.seen.port}`;
  }
  return undefined;
}

/** Probes from `kube`'s active gateway node to each target endpoint. The probe pod goes even on failure. */
export async function probeFrom(kube: Kube, from: { cluster: string; node: string }, targets: readonly Endpoint[], timeoutMs: number): Promise<PortProbe[]> {
  const out: PortProbe[] = [];
  try {
    await kube.apply(namespaceObject(PROBE_NS));
    await kube.apply(podObject({ name: 'probe', namespace: PROBE_NS, image: NETSHOOT, command: ['sleep', '600'], node: from.node, hostNetwork: true }));
    await podReady(kube, PROBE_NS, 'probe', timeoutMs);
    for (const e of targets) {
      const addrs = probeAddresses(e);
      let answered: PortProbe | undefined;
      for (const a of addrs) {
        const nonce = randomBytes(16).toString('hex');
        const reply = await execIn(kube, PROBE_NS, 'probe', probeCommand(a.ip, a.port, nonce, from.cluster)).catch((err: unknown) => messageOf(err));
        const seenAs = parseProbeReply(reply, nonce);
        if (seenAs !== undefined) {
          answered = { from: from.cluster, to: e.cluster_id, target: `${a.ip}:${a.port}`, answered: true, seenAs };
          break;
        }
      }
      out.push(answered ?? { from: from.cluster, to: e.cluster_id, target: addrs.map((a) => `${a.ip}:${a.port}`).join(' or ') || '(no nat-probe port published)', answered: false });
    }
  } finally {
    await kube.remove('v1', 'Namespace', PROBE_NS).catch(() => false);
  }
  return out;
}
