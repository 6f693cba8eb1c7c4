import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveNetns } from '../../sandbox/exec.ts';
import { CLUSTERS, Clusterset, others, type ClustersetOptions, type DriverName, type GatewayProc, type RouteAgentProc } from './clusterset.ts';
import { eventually, kubectl } from './cli.ts';
import { echoFrom, inNetns } from './netns.ts';

/**
 * The clusterset's data path end to end, for the route agent's e2e tests: a sandbox of 3
 * clusters × 3 nodes (nodes 1 and 2 gateway-capable, c3 behind NAT), two gateways and a
 * route agent on every node per cluster, and in every cluster an echo pod on node 1 (a
 * gateway node) and on node 3 (never a gateway) behind the Service demo/echo.
 */
export interface PodRef {
  readonly cluster: string;
  readonly node: string;
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
}

export const ECHO_PORT = 8080;
/** Pods on these node indexes: a gateway node and a node that is never one. */
const POD_NODES = [0, 2] as const;

export class Datapath {
  readonly cs = new Clusterset();
  readonly pods: PodRef[] = [];
  readonly serviceIps = new Map<string, string>();
  readonly gateways = new Map<string, GatewayProc>();
  readonly agents = new Map<string, RouteAgentProc>();
  #driver: DriverName = 'wireguard';

  async up(driver: DriverName, o: Partial<ClustersetOptions> = {}, agentArgs: readonly string[] = []): Promise<void> {
    this.#driver = driver;
    await this.cs.up({ clusters: 3, gateways: 2, nodes: 3, nat: ['c3'], portBase: 26900, ...o });
    await this.#deploy();
    for (const c of CLUSTERS) {
      for (const i of [0, 1]) this.gateways.set(`${c}-n${i + 1}`, await this.cs.startGateway(c, i, driver));
      for (const i of [0, 1, 2]) this.agents.set(`${c}-n${i + 1}`, this.cs.startRouteAgent(c, i, agentArgs));
    }
    for (const c of CLUSTERS) await this.cs.connected(c, await this.activeGateway(c), others(c));
    for (const c of CLUSTERS) {
      for (const i of [0, 1, 2]) await this.routed(c, `${c}-n${i + 1}`, others(c));
    }
  }

  get driver(): DriverName {
    return this.#driver;
  }

  /** The node holding c's gateway Lease. */
  async activeGateway(c: string): Promise<string> {
    return eventually(`${c}'s active gateway`, async () => {
      const holder = (await this.cs.kubectl(c, ['-n', 'isthmus-system', 'get', 'lease', 'isthmus-gateway', '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
      return holder === '' ? undefined : holder;
    });
  }

  /** Waits until `node`'s RouteAgent routes exactly `remotes` (via `via` when given) without errors. */
  async routed(c: string, node: string, remotes: readonly string[], via?: string): Promise<void> {
    await eventually(`${node} routes ${remotes.join(', ')}${via === undefined ? '' : ` via ${via}`}`, async () => {
      const s = (await this.cs.routeAgent(c, node).catch(() => undefined))?.status;
      const got = (s?.remotes ?? []).map((r) => r.cluster).sort().join(',');
      const ok = got === [...remotes].sort().join(',') && (s?.errors ?? []).length === 0 && (via === undefined || s?.gateway === via);
      return ok ? true : undefined;
    }, 60_000);
  }

  async #deploy(): Promise<void> {
    for (const c of CLUSTERS) {
      const items: object[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } }];
      for (const i of POD_NODES) {
        const node = this.cs.node(c, i).name;
        items.push({
          apiVersion: 'v1', kind: 'Pod', metadata: { name: `echo-${node}`, namespace: 'demo', labels: { app: 'echo' } },
          spec: { nodeName: node, containers: [{ name: 'echo', image: 'isthmus/echo:dev', ports: [{ containerPort: ECHO_PORT }] }] },
        });
      }
      items.push({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'demo' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'tcp', port: ECHO_PORT, protocol: 'TCP' }, { name: 'udp', port: ECHO_PORT, protocol: 'UDP' }] } });
      await kubectl(this.cs.kubeconfig, c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    }
    for (const c of CLUSTERS) {
      for (const i of POD_NODES) {
        const node = this.cs.node(c, i);
        const name = `echo-${node.name}`;
        const ip = await eventually(`${name}'s address`, async () => (await this.cs.kubectl(c, ['-n', 'demo', 'get', 'pod', name, '-o', 'jsonpath={.status.podIP}'])).trim() || undefined, 90_000);
        // ready when its echo server answers from its node
        await eventually(`${name} answers`, async () => ((await echoFrom(node.netns, 'tcp', ip, ECHO_PORT).catch(() => undefined)) === undefined ? undefined : true), 90_000);
        this.pods.push({ cluster: c, node: node.name, name, ip, netns: await resolveNetns(this.cs.sandboxDir, c, name, 'demo') });
      }
      this.serviceIps.set(c, (await this.cs.kubectl(c, ['-n', 'demo', 'get', 'service', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim());
    }
  }

  pod(cluster: string, nodeIndex: number): PodRef {
    const name = this.cs.node(cluster, nodeIndex).name;
    const p = this.pods.find((x) => x.node === name);
    if (p === undefined) throw new Error(`no echo pod on ${name}`);
    return p;
  }

  /**
   * Every pod to every remote pod, TCP and UDP: the answer must come from the target pod
   * and name the client's own pod IP (nothing masqueraded on the way). Returns the failures.
   * An exchange that fails is tried again, for up to `settleMs` (see settling()).
   */
  async matrix(pods: readonly PodRef[] = this.pods, settleMs = SETTLE_MS): Promise<string[]> {
    const jobs: (() => Promise<string | undefined>)[] = [];
    for (const from of pods) {
      for (const to of this.pods.filter((p) => p.cluster !== from.cluster)) {
        for (const proto of ['tcp', 'udp'] as const) {
          jobs.push(settling(settleMs, async () => {
            const what = `${proto} ${from.node} ${from.ip} → ${to.node} ${to.ip}`;
            try {
              const a = await echoFrom(from.netns, proto, to.ip, ECHO_PORT);
              if (a['podIp'] !== to.ip) return `${what}: answered by ${String(a['podIp'])}`;
              if (!String(a['client']).startsWith(`${from.ip}:`)) return `${what}: the server saw ${String(a['client'])}`;
              return undefined;
            } catch (err) {
              return `${what}: ${err instanceof Error ? err.message : String(err)}`;
            }
          }));
        }
      }
    }
    return (await parallel(jobs, 6)).filter((x): x is string => x !== undefined);
  }

  /**
   * Each pod to every remote cluster's ClusterIP, TCP and UDP: the remote gateway node's
   * kube-proxy translates it to one of that cluster's pods, and the route agents keep the
   * client's pod IP as the source, so the server sees the client's pod IP.
   */
  async clusterIps(settleMs = SETTLE_MS): Promise<string[]> {
    const jobs: (() => Promise<string | undefined>)[] = [];
    for (const from of this.pods) {
      for (const c of others(from.cluster)) {
        for (const proto of ['tcp', 'udp'] as const) {
          jobs.push(settling(settleMs, async () => {
            const ip = this.serviceIps.get(c) ?? '';
            const what = `${proto} ${from.node} → ${c} ClusterIP ${ip}`;
            try {
              const a = await echoFrom(from.netns, proto, ip, ECHO_PORT);
              if (a['cluster'] !== c) return `${what}: answered by cluster ${String(a['cluster'])}`;
              if (!String(a['client']).startsWith(`${from.ip}:`)) return `${what}: the server saw ${String(a['client'])}`;
              return undefined;
            } catch (err) {
              return `${what}: ${err instanceof Error ? err.message : String(err)}`;
            }
          }));
        }
      }
    }
    return (await parallel(jobs, 6)).filter((x): x is string => x !== undefined);
  }

  /** The MTU the route agent of `from`'s node routes `toCluster` with. */
  async mtu(from: PodRef, toCluster: string): Promise<number> {
    const s = (await this.cs.routeAgent(from.cluster, from.node))?.status;
    const r = s?.remotes?.find((x) => x.cluster === toCluster);
    if (r?.mtu === undefined) throw new Error(`${from.node} has no MTU for ${toCluster}: ${JSON.stringify(s)}`);
    return r.mtu;
  }

  /**
   * A don't-fragment ping of `size` bytes of payload: resolves with ping's output and
   * whether it was answered.
   */
  async dfPing(from: PodRef, to: PodRef, size: number): Promise<{ ok: boolean; out: string }> {
    const r = await inNetns(from.netns, 'ping', ['-n', '-c', '2', '-i', '0.3', '-W', '2', '-M', 'do', '-s', String(size), to.ip]);
    return { ok: r.code === 0, out: `${r.stdout}${r.stderr}` };
  }

  /** POSTs `bytes` to the remote echo pod and GETs as many back: [received by the server, received by the client]. */
  async bigBody(from: PodRef, to: PodRef, bytes: number): Promise<[number, number]> {
    const script = `
import { request } from 'node:http';
const [host, port, n] = process.argv.slice(1);
const get = (opts, body) => new Promise((resolve, reject) => {
  const req = request({ host, port: Number(port), ...opts }, (res) => { let len = 0; const parts = []; res.on('data', (c) => { len += c.length; if (parts.length < 1) parts.push(c); }); res.on('end', () => resolve({ len, first: Buffer.concat(parts).toString() })); });
  req.on('error', reject); req.setTimeout(30000, () => req.destroy(new Error('timeout'))); req.end(body);
});
const up = await get({ method: 'POST', path: '/upload' }, Buffer.alloc(Number(n), 0x61));
const down = await get({ method: 'GET', path: '/bytes/' + n });
process.stdout.write(JSON.stringify({ up: JSON.parse(up.first).received, down: down.len }));`;
    const r = await inNetns(from.netns, process.execPath, ['--input-type=module', '-e', script, to.ip, String(ECHO_PORT), String(bytes)], 60_000);
    if (r.code !== 0) throw new Error(`10 MiB exchange ${from.node} → ${to.node}: ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { up: number; down: number };
    return [j.up, j.down];
  }

  async close(): Promise<void> {
    await this.cs.close();
  }
}

/**
 * How long a failed exchange of matrix()/clusterIps() is tried again. These check that
 * every path works, not that it never blinks: on a loaded machine a gateway may miss a
 * lease renewal and fail over (~3 s without cables), and a node's route agent applies a
 * change a moment after another's status shows it. Each exchange must succeed once.
 */
const SETTLE_MS = 20_000;

/** The check, again every second while it fails (a string), for up to `ms`; its last result. */
function settling(ms: number, check: () => Promise<string | undefined>): () => Promise<string | undefined> {
  return async () => {
    const deadline = Date.now() + ms;
    for (;;) {
      const failure = await check();
      if (failure === undefined || Date.now() >= deadline) return failure;
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
}

/** Runs the jobs with at most `n` at once, results in order. */
export async function parallel<T>(jobs: readonly (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, jobs.length) }, async () => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i];
      if (job !== undefined) out[i] = await job();
    }
  }));
  return out;
}

/**
 * The data-path tests every driver and mode passes (registered on `test`, in order):
 * the pod matrix, remote ClusterIPs, a 10 MiB body both ways and the path MTU edge.
 */
export function dataPathTests(test: Test, dp: Datapath, driver: DriverName, o: Partial<ClustersetOptions> = {}, agentArgs: readonly string[] = []): void {
  test(`${driver}: every pod reaches every remote pod over TCP and UDP, from gateway and non-gateway nodes, with its own pod IP`, async () => {
    await dp.up(driver, o, agentArgs);
    assert.equal(await dp.matrix(), []);
  });

  test(`${driver}: remote ClusterIPs: the remote gateway node's kube-proxy picks a pod, and the server sees the client's pod IP (nothing masquerades)`, async () => {
    assert.equal(await dp.clusterIps(), []);
  });

  test(`${driver}: a 10 MiB body crosses every cable both ways; the largest DF ping passes and one byte more gets "fragmentation needed"`, async () => {
    const from = dp.pod('c1', 2);
    for (const to of [dp.pod('c2', 2), dp.pod('c3', 0)]) {
      assert.equal(await dp.bigBody(from, to, 10 << 20), [10 << 20, 10 << 20]);
      const mtu = await dp.mtu(from, to.cluster);
      // a cable's routes may be re-set for a moment (an IPsec rekey): the path must carry it within seconds
      const fits = await eventually(`DF ping of ${mtu} bytes to ${to.node}`, async () => {
        const r = await dp.dfPing(from, to, mtu - 28);
        return r.ok ? r : undefined;
      }, 15_000);
      assert.ok(fits.ok);
      const over = await dp.dfPing(from, to, mtu - 27);
      assert.not.ok(over.ok);
      assert.match(over.out, new RegExp(`mtu ?=? ?${mtu}`), `one byte more: ${over.out}`);
    }
  });
}
