import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ETCD_BIN, eventually, freePort, requireEtcd } from './broker-harness.ts';
import { isthmus, type Run } from './lib/cli.ts';

// Real etcd members on loopback started the way deploy/broker/etcd.yaml starts them: each
// through `isthmus broker etcd-bootstrap`, then `etcd --config-file`. A member killed and
// its data dir wiped (an emptyDir with its pod) rejoins, and the cluster keeps its data;
// a peer of another cluster and a cluster without quorum are refused with nothing changed.

interface Member { name: string; client: string; peer: string; proc?: ChildProcess | undefined }
let dir = '';
// every member on its own loopback address, all on the same two ports (as pods are)
let clientPort = 0;
let peerPort = 0;
const at = (name: string, host: string): Member => ({ name, client: `http://${host}:${clientPort}`, peer: `http://${host}:${peerPort}` });
const members: Member[] = [];
const procs = new Set<ChildProcess>();

const initialCluster = (ms: readonly Member[] = members): string => ms.map((m) => `${m.name}=${m.peer}`).join(',');
const dataDir = (m: Member): string => join(dir, `${m.name}.etcd`);
const configFile = (m: Member): string => join(dir, `${m.name}.conf.yaml`);

async function bootstrap(m: Member, ms: readonly Member[] = members, extra: string[] = []): Promise<Run> {
  return isthmus(['broker', 'etcd-bootstrap', '--name', m.name, '--initial-cluster', initialCluster(ms), '--data-dir', dataDir(m), '--config-file', configFile(m),
    '--listen-client-urls', m.client, '--listen-peer-urls', m.peer, '--client-port', String(clientPort), '--probe-seconds', '2',
    '--etcd-option', 'auto-compaction-mode=periodic,auto-compaction-retention=1h,enable-grpc-gateway=true,heartbeat-interval=100,election-timeout=1000,logger=zap,log-level=warn,initial-cluster-token=rejoin-test', ...extra], { ISTHMUS_LOG_LEVEL: 'info' }, 60_000);
}

function startEtcd(m: Member): void {
  const log = openSync(join(dir, `${m.name}.log`), 'a');
  const p = spawn(ETCD_BIN, ['--config-file', configFile(m)], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  p.on('error', () => undefined);
  procs.add(p);
  p.on('exit', () => procs.delete(p));
  m.proc = p;
}

async function kill(m: Member): Promise<void> {
  const p = m.proc;
  if (p === undefined || p.exitCode !== null || p.pid === undefined) return;
  const exited = new Promise((r) => p.once('exit', r));
  process.kill(-p.pid, 'SIGKILL');
  await exited;
  m.proc = undefined;
}

async function withClient<T>(hosts: readonly string[], f: (c: Etcd3) => Promise<T>): Promise<T> {
  const c = new Etcd3({ hosts: [...hosts], dialTimeout: 1_000 });
  try {
    return await f(c);
  } finally {
    c.close();
  }
}

/** Every member started, a voter, and answering with the same leader. */
async function healthy(ms: readonly Member[]): Promise<true | undefined> {
  const list = await withClient([ms[0]?.client ?? ''], (c) => c.cluster.memberList({}));
  if (list.members.length !== ms.length || list.members.some((x) => x.name === '' || x.clientURLs.length === 0 || x.isLearner === true)) return undefined;
  const leaders = new Set<string>();
  for (const m of ms) leaders.add((await withClient([m.client], (c) => c.maintenance.status())).leader);
  return leaders.size === 1 && !leaders.has('0') ? true : undefined;
}

const decisionOf = (r: Run): string => /"decision":"(\w+)"/.exec(r.stderr)?.[1] ?? `(none: exit ${r.code}: ${r.stderr.slice(-500)})`;

test.before(async () => {
  requireEtcd();
  dir = await mkdtemp(join(tmpdir(), 'isthmus-etcd-rejoin-'));
  clientPort = await freePort();
  peerPort = await freePort();
  for (let i = 0; i < 3; i++) members.push(at(`m${i}`, `127.0.0.${11 + i}`));
});

test.after(async () => {
  for (const p of procs) if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

test('first bootstrap one member after the other (a StatefulSet\'s order): new, new, then existing as the listed member', async () => {
  const [m0, m1, m2] = members as [Member, Member, Member];
  assert.is(decisionOf(await bootstrap(m0)), 'new', 'no peer answers');
  startEtcd(m0);
  // m0 answers, but nothing has started: still the first bootstrap
  assert.is(decisionOf(await bootstrap(m1)), 'new', 'm0 answers with a cluster that is still forming');
  startEtcd(m1);
  await eventually('m0 and m1 to elect a leader', () => withClient([m0.client], async (c) => ((await c.maintenance.status()).leader !== '0' ? true : undefined)), 20_000, 200);
  const r2 = await bootstrap(m2);
  assert.is(decisionOf(r2), 'rejoin', r2.stderr);
  assert.match(await readFile(configFile(m2), 'utf8'), /"initial-cluster-state": "existing"/);
  startEtcd(m2);
  await eventually('3 healthy members', () => healthy(members), 30_000, 200);
  await withClient([m0.client], async (c) => void (await c.put('/rejoin/before').value('kept')));
});

test('a member with its data restarts as usual', async () => {
  const m1 = members[1] as Member;
  await kill(m1);
  assert.is(decisionOf(await bootstrap(m1)), 'data');
  startEtcd(m1);
  await eventually('3 healthy members', () => healthy(members), 30_000, 200);
});

test('a member killed and its data dir wiped rejoins: stale entry removed, itself added, the data back', async () => {
  const m1 = members[1] as Member;
  const oldId = (await withClient([members[0]?.client ?? ''], (c) => c.cluster.memberList({}))).members.find((x) => x.name === 'm1')?.ID;
  await kill(m1);
  await rm(dataDir(m1), { recursive: true, force: true });
  await withClient([members[0]?.client ?? ''], async (c) => void (await c.put('/rejoin/while-away').value('yes')));
  const r = await bootstrap(m1);
  assert.is(decisionOf(r), 'rejoin', r.stderr);
  assert.match(r.stderr, /removed the stale member entry/);
  assert.match(r.stderr, /added this member/);
  startEtcd(m1);
  await eventually('3 healthy members', () => healthy(members), 30_000, 200);
  const list = await withClient([m1.client], (c) => c.cluster.memberList({}));
  assert.not.ok(list.members.some((x) => x.ID === oldId), 'the stale entry is gone');
  // m1 serves both keys itself (serializable reads from its own store)
  for (const [k, v] of [['/rejoin/before', 'kept'], ['/rejoin/while-away', 'yes']] as const) {
    assert.is(await eventually(`${k} on m1`, () => withClient([m1.client], (c) => c.get(k).serializable(true).string()).then((x) => x ?? undefined), 10_000, 200), v);
  }
});

test('a peer of another cluster: refused, nothing changed', async () => {
  const other = at('other', '127.0.0.20');
  assert.is(decisionOf(await bootstrap(other, [other])), 'new');
  startEtcd(other);
  await eventually('the other etcd', () => withClient([other.client], async (c) => ((await c.maintenance.status()).leader !== '0' ? true : undefined)), 20_000, 200);
  // a member "mx" whose configured peer "m0" is really the other cluster's only member
  const mx = at('mx', '127.0.0.21');
  const r = await bootstrap(mx, [{ ...other, name: 'm0' }, mx]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /answers as member other, not m0: it is not part of this cluster; nothing was changed/);
  assert.is((await withClient([other.client], (c) => c.cluster.memberList({}))).members.length, 1);
  await kill(other);
});

test('no quorum (two of three gone): a clear error, the survivor\'s data untouched, and it rejoins once a majority is back', async () => {
  const [m0, m1, m2] = members as [Member, Member, Member];
  await kill(m1);
  await kill(m2);
  await rm(dataDir(m1), { recursive: true, force: true });
  await rm(configFile(m1), { force: true });
  const r = await bootstrap(m1, members, ['--timeout', '3']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /member remove .* failed within 3000 ms.*quorum/);
  assert.is(await readFile(configFile(m1), 'utf8').then(() => 'written', () => 'none'), 'none', 'no config is written');
  assert.is((await withClient([m0.client], (c) => c.cluster.memberList({}))).members.length, 3, 'no member was removed');
  assert.is(decisionOf(await bootstrap(m2)), 'data');
  startEtcd(m2);
  await eventually('m0 and m2 to elect a leader', () => withClient([m0.client], async (c) => ((await c.maintenance.status()).leader !== '0' ? true : undefined)), 20_000, 200);
  assert.is(await withClient([m0.client], (c) => c.get('/rejoin/before').string()), 'kept');
  assert.is(decisionOf(await bootstrap(m1)), 'rejoin');
  startEtcd(m1);
  await eventually('3 healthy members', () => healthy(members), 30_000, 200);
});

test.run();
