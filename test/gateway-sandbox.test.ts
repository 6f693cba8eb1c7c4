// e2e, needs root: the gateway engine on the sandbox with real parts: 3 clusters (c3 behind
// NAT), a real etcd + broker on the host's wan address, `isthmus gateway` with the
// wireguard driver (wireguard-go) on each gateway node, the Lease and the Gateway status in
// each cluster's real apiserver, and traffic between the clusters' pod CIDRs.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectRoot, type SandboxState } from '../sandbox/index.ts';
import { eventually, isthmus, kubectl, requireRootForTest } from './lib/cli.ts';
import { inNetns } from './lib/netns.ts';

requireRootForTest('test/gateway-sandbox.test.ts');
const dir = mkdtempSync('/tmp/isthmus-gw-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const kc = join(sbx, 'kubeconfig');
const cli = join(projectRoot(), 'cli', 'main.ts');
const procs: ChildProcess[] = [];
const d = (p: string): string => join(dir, p);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function start(name: string, command: string, args: string[]): ChildProcess {
  const log = openSync(d(`${name}.log`), 'a');
  const p = spawn(command, args, { stdio: ['ignore', log, log], detached: true });
  procs.push(p);
  return p;
}

function state(): SandboxState {
  return JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
}

interface GatewayObj { status?: { haStatus?: string; connections?: { cluster: string; status: string; statusMessage?: string; rtt?: { avgMs?: number }; natTraversal?: boolean }[]; localEndpoint?: { behindNAT?: boolean } } }

async function gateway(ctx: string, name: string): Promise<GatewayObj> {
  return JSON.parse(await kubectl(kc, ctx, ['-n', 'isthmus-system', 'get', 'gateways.isthmus.dev', name, '-o', 'json'])) as GatewayObj;
}

test.after(async () => {
  for (const p of procs) {
    try {
      process.kill(-(p.pid ?? 0), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await isthmus(['sandbox', 'down'], env);
  execFileSync('rm', ['-rf', dir]);
});

test('3 clusters (c3 behind NAT) connect in full mesh through WireGuard cables', async () => {
  const up = await isthmus(['sandbox', 'up', '--clusters', '3', '--nodes', '2', '--nat', 'c3', '--port-base', '26700'], env);
  assert.is(up.code, 0, up.stderr);
  // the clusterset's PKI and broker, on the host's wan address
  assert.is((await isthmus(['certs', 'ca', 'create', '--out', d('ca')])).code, 0);
  assert.is((await isthmus(['certs', 'issue', '--ca', d('ca'), '--server', '--san', '172.29.0.1', '--out', d('broker')])).code, 0);
  for (const c of ['c1', 'c2', 'c3']) assert.is((await isthmus(['certs', 'issue', '--ca', d('ca'), '--cluster', c, '--out', d(c)])).code, 0);
  const etcdPort = await freePort();
  const brokerPort = await freePort();
  start('etcd', '/usr/bin/etcd', ['--data-dir', d('etcd'), '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`, '--listen-peer-urls', `http://127.0.0.1:${await freePort()}`, '--log-level', 'warn']);
  start('broker', process.execPath, ['--no-warnings', cli, 'broker', '--etcd', `http://127.0.0.1:${etcdPort}`, '--listen', `172.29.0.1:${brokerPort}`, '--tls-dir', d('broker')]);

  for (const c of state().clusters) {
    await kubectl(kc, c.name, ['apply', '-f', join(projectRoot(), 'deploy', 'crds', 'gateways.isthmus.dev.json')]);
    await kubectl(kc, c.name, ['create', 'namespace', 'isthmus-system']);
  }
  for (const c of state().clusters) await kubectl(kc, c.name, ['wait', '--for=condition=Established', 'crd/gateways.isthmus.dev', '--timeout=30s']);

  for (const c of state().clusters) {
    const gw = c.nodes[0];
    assert.ok(gw);
    const podCidr = (await kubectl(kc, c.name, ['get', 'node', gw.name, '-o', 'jsonpath={.spec.podCIDR}'])).trim();
    const healthIp = podCidr.replace(/\.0\/\d+$/, '.1');
    execFileSync('ip', ['-n', gw.netns, 'addr', 'add', `${healthIp}/32`, 'dev', 'lo']);
    const privateIp = c.wan.nat === undefined ? c.wan.ip : c.wan.nat.nodeInside.split('/')[0] ?? '';
    start(`gateway-${c.name}`, 'ip', ['netns', 'exec', gw.netns, process.execPath, '--no-warnings', cli, 'gateway',
      '--cluster', c.name, '--hostname', gw.name, '--broker', `172.29.0.1:${brokerPort}`, '--broker-tls-dir', d(c.name),
      '--driver', 'wireguard', '--private-ip', privateIp, '--pod-cidrs', c.podCidr, '--service-cidrs', c.serviceCidr,
      '--health-check-ip', healthIp, '--kubeconfig', join(c.dir, 'kubelet.kubeconfig'), '--state-dir', d(`state-${c.name}`), '--private-sockets']);
  }

  for (const c of ['c1', 'c2', 'c3']) {
    const g = await eventually(`${c} gateway: every cable connected`, async () => {
      const o = await gateway(c, `${c}-n1`).catch(() => undefined);
      const conns = o?.status?.connections ?? [];
      return o?.status?.haStatus === 'active' && conns.length === 2 && conns.every((x) => x.status === 'connected' && x.rtt?.avgMs !== undefined) ? o : undefined;
    }, 90_000);
    assert.is(g.status?.localEndpoint?.behindNAT, c === 'c3');
    if (c !== 'c3') assert.is(g.status?.connections?.find((x) => x.cluster === 'c3')?.natTraversal, true);
  }

  // packets between the clusters' pod CIDRs go through the cables
  const s = state();
  const healthIp = async (i: number): Promise<string> => {
    const c = s.clusters[i];
    const podCidr = (await kubectl(kc, c?.name ?? '', ['get', 'node', c?.nodes[0]?.name ?? '', '-o', 'jsonpath={.spec.podCIDR}'])).trim();
    return podCidr.replace(/\.0\/\d+$/, '.1');
  };
  for (const [a, b] of [[0, 1], [1, 2], [2, 0]] as const) {
    const from = await healthIp(a);
    const to = await healthIp(b);
    const r = await inNetns(s.clusters[a]?.nodes[0]?.netns ?? '', 'ping', ['-c', '2', '-W', '2', '-I', from, to]);
    assert.is(r.code, 0, `ping ${from} → ${to}: ${r.stdout} ${r.stderr}`);
  }
});

test.run();
