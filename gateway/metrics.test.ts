import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MetricsServer } from '../core/index.ts';
import { GatewayMetrics } from './metrics.ts';
import { gatewayStatus, type StatusInput } from './status.ts';

const local = { clusterID: 'c1', hostname: 'c1-n1', privateIP: '172.29.0.11', publicIP: '172.29.0.11', behindNAT: false, natSeenByProbe: false, cableDriver: 'wireguard', port: 51820 };
const spec = (c: string) => ({ remoteCluster: c, remoteIp: `172.29.0.1${c.slice(1)}`, remotePort: 51820, remoteCidrs: [], natTraversal: false, backend: { 'public-key': 'PUBKEY-SECRETISH' } });
const stats = (avgMs: number, loss = 0) => ({ lastMs: avgMs + 1, minMs: avgMs - 1, avgMs, maxMs: avgMs + 2, stddevMs: 0.5, loss, sent: 10, dead: false });

function status(over: Partial<StatusInput>) {
  return gatewayStatus({ active: true, local, desired: [], failed: new Map(), cables: [], health: new Map(), nat: new Map(), ...over });
}

const twoCables = status({
  desired: [spec('c2'), spec('c3')],
  cables: [
    { remoteCluster: 'c2', state: 'connected', remoteIp: '172.29.0.12', rxBytes: 1000, txBytes: 2000 },
    { remoteCluster: 'c3', state: 'connected', remoteIp: '172.29.0.13' },
  ],
  failed: new Map([['c3', 'refused']]),
  health: new Map([['c2', stats(4, 0.25)]]),
  nat: new Map([['c2', 'private'], ['c3', 'pending']]),
});

/** The sample lines of `name` (with labels), as "labels value". */
async function samples(m: GatewayMetrics, name: string): Promise<string[]> {
  const text = await m.registry.metrics();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).map((l) => l.slice(name.length).trim()).sort();
}

test('values after updateFromStatus: active, status, RTT in seconds, loss, bytes, NAT discovery', async () => {
  const m = new GatewayMetrics();
  m.updateFromStatus(twoCables);
  assert.equal(await samples(m, 'isthmus_gateway_active'), ['1']);
  assert.equal(await samples(m, 'isthmus_gateway_behind_nat'), ['0']);
  assert.equal(await samples(m, 'isthmus_gateway_connection_status'), [
    '{remote_cluster="c2",status="connected"} 1', '{remote_cluster="c2",status="connecting"} 0', '{remote_cluster="c2",status="error"} 0',
    '{remote_cluster="c3",status="connected"} 0', '{remote_cluster="c3",status="connecting"} 0', '{remote_cluster="c3",status="error"} 1',
  ]);
  assert.equal(await samples(m, 'isthmus_gateway_connection_rtt_seconds'), [
    '{remote_cluster="c2",stat="avg"} 0.004', '{remote_cluster="c2",stat="last"} 0.005', '{remote_cluster="c2",stat="max"} 0.006',
    '{remote_cluster="c2",stat="min"} 0.003', '{remote_cluster="c2",stat="stddev"} 0.0005',
  ]);
  assert.equal(await samples(m, 'isthmus_gateway_connection_loss_ratio'), ['{remote_cluster="c2"} 0.25']);
  assert.equal(await samples(m, 'isthmus_gateway_connection_rx_bytes'), ['{remote_cluster="c2"} 1000']);
  assert.equal(await samples(m, 'isthmus_gateway_connection_tx_bytes'), ['{remote_cluster="c2"} 2000']);
  assert.equal((await samples(m, 'isthmus_gateway_connection_nat_discovery')).filter((l) => l.endsWith(' 1')), ['{remote_cluster="c2",result="private"} 1', '{remote_cluster="c3",result="pending"} 1']);
  assert.equal(await samples(m, 'isthmus_gateway_connection_errors_total'), ['{remote_cluster="c2"} 0', '{remote_cluster="c3"} 1']);
  const text = await m.registry.metrics();
  assert.match(text, /^isthmus_gateway_process_cpu_seconds_total /m);
  assert.not.match(text, 'PUBKEY');
  assert.not.match(text, '172.29.0.', 'no addresses in labels');
});

test('errors_total counts each turn into error; a gone cluster loses every series; passive has none', async () => {
  const m = new GatewayMetrics();
  m.updateFromStatus(twoCables);
  m.updateFromStatus(twoCables);
  const c3ok = status({ desired: [spec('c2'), spec('c3')], cables: [{ remoteCluster: 'c2', state: 'connected', remoteIp: '' }, { remoteCluster: 'c3', state: 'connected', remoteIp: '' }] });
  m.updateFromStatus(c3ok);
  m.updateFromStatus(twoCables);
  assert.equal(await samples(m, 'isthmus_gateway_connection_errors_total'), ['{remote_cluster="c2"} 0', '{remote_cluster="c3"} 2']);
  m.updateFromStatus(status({ desired: [spec('c2')], cables: [{ remoteCluster: 'c2', state: 'connecting', remoteIp: '' }] }));
  const text = await m.registry.metrics();
  assert.not.match(text, 'remote_cluster="c3"');
  assert.equal(await samples(m, 'isthmus_gateway_connection_rtt_seconds'), [], 'no probes in this status: no RTT series');
  assert.equal(await samples(m, 'isthmus_gateway_connection_nat_discovery'), []);
  assert.ok((await samples(m, 'isthmus_gateway_connection_status')).includes('{remote_cluster="c2",status="connecting"} 1'));
  m.updateFromStatus(status({ active: false, local: { ...local, behindNAT: true } }));
  assert.not.match(await m.registry.metrics(), 'remote_cluster=');
  assert.equal(await samples(m, 'isthmus_gateway_active'), ['0']);
  assert.equal(await samples(m, 'isthmus_gateway_behind_nat'), ['1']);
});

test('reconciles by result and their duration', async () => {
  const m = new GatewayMetrics();
  assert.equal(await samples(m, 'isthmus_gateway_reconciles_total'), ['{result="failed"} 0', '{result="ok"} 0']);
  m.reconciled('ok', 0.02);
  m.reconciled('ok', 0.2);
  m.reconciled('failed', 3);
  assert.equal(await samples(m, 'isthmus_gateway_reconciles_total'), ['{result="failed"} 1', '{result="ok"} 2']);
  assert.equal(await samples(m, 'isthmus_gateway_reconcile_duration_seconds_count'), ['3']);
  assert.ok((await samples(m, 'isthmus_gateway_reconcile_duration_seconds_bucket')).includes('{le="0.25"} 2'));
});

test('a scrape over HTTP', async () => {
  const m = new GatewayMetrics();
  m.updateFromStatus(twoCables);
  const server = new MetricsServer(m.registry, '127.0.0.1:0', async () => true);
  await server.start();
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.is(res.status, 200);
    assert.match(await res.text(), /^isthmus_gateway_connection_status\{remote_cluster="c2",status="connected"\} 1$/m);
    assert.is((await fetch(`http://127.0.0.1:${server.port}/readyz`)).status, 200);
  } finally {
    await server.stop();
  }
});

test.run();
