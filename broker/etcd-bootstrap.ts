import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Etcd3, type IMember } from 'etcd3';
import { ErrorCodes, IsthmusError, messageOf, sleep, systemClock, type Logger } from '../core/index.ts';

/**
 * How one member of the broker's etcd starts (`isthmus broker etcd-bootstrap`, the init
 * container of deploy/broker/etcd.yaml): with its data, as usual; with an empty data dir
 * while no peer answers, as a member of a new cluster (the first bootstrap); with an empty
 * data dir while a peer answers with a cluster that has started, by rejoining it — its
 * stale entry removed, itself added with its peer URL — and starting `existing` with the
 * members the cluster lists. A member that loses its data (an emptyDir with its pod) thus
 * comes back instead of being refused ("member … has already been bootstrapped").
 *
 * `decide` is the pure part; `etcdBootstrap` asks the peers, changes the membership and
 * writes the etcd config file (etcd ignores its flags under --config-file, so the file
 * carries every setting).
 */

export interface Peer {
  readonly name: string;
  readonly peerUrl: string;
}

/** What a peer answered: the member that answered and the members its cluster lists. */
export interface PeerAnswer {
  readonly peer: Peer;
  readonly clusterId: string;
  readonly memberId: string;
  readonly members: readonly Pick<IMember, 'ID' | 'name' | 'peerURLs' | 'clientURLs'>[];
}

export type Decision =
  | { readonly kind: 'data' }
  | { readonly kind: 'new'; readonly initialCluster: readonly Peer[] }
  /** existing: remove `remove` (this member's stale entry) first when set, then add this member unless `add` is false. */
  | { readonly kind: 'rejoin'; readonly remove?: string; readonly add: boolean; readonly members: readonly Pick<IMember, 'ID' | 'name' | 'peerURLs'>[] };

/** `a=http://h:2380,b=…` → peers, in order. */
export function parseInitialCluster(raw: string): Peer[] {
  const peers = raw.split(',').map((s) => s.trim()).filter((s) => s !== '').map((entry) => {
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    const peerUrl = entry.slice(eq + 1);
    if (eq <= 0 || !/^https?:\/\/[^/\s]+:\d+\/?$/.test(peerUrl)) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `initial cluster entry ${JSON.stringify(entry)} is not name=http://host:port`);
    return { name, peerUrl: peerUrl.replace(/\/$/, '') };
  });
  if (peers.length === 0) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, 'the initial cluster names no member');
  const names = new Set(peers.map((p) => p.name));
  if (names.size !== peers.length) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `the initial cluster names a member twice: ${raw}`);
  return peers;
}

export function formatInitialCluster(peers: readonly Peer[]): string {
  return peers.map((p) => `${p.name}=${p.peerUrl}`).join(',');
}

const norm = (u: string): string => u.replace(/\/$/, '');
const started = (m: Pick<IMember, 'clientURLs'>): boolean => (m.clientURLs ?? []).length > 0;
const describe = (members: PeerAnswer['members']): string => members.map((m) => `${m.name === '' ? '(unstarted)' : m.name} ${m.peerURLs.join(' ')}`).join(', ');

/**
 * Which way member `self` of `configured` starts, from whether its data dir holds data and
 * what the peers that answered said. Throws (FAILED_PRECONDITION) when an answer is not of
 * this cluster: the peer is not among the members it lists, its members are none of the
 * configured ones, or the peers disagree on the cluster. Pure.
 */
export function decide(selfName: string, configured: readonly Peer[], hasData: boolean, answers: readonly PeerAnswer[]): Decision {
  const self = configured.find((p) => p.name === selfName);
  if (self === undefined) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `member ${selfName} is not in the initial cluster ${formatInitialCluster(configured)}`);
  if (hasData) return { kind: 'data' };
  if (answers.length === 0) return { kind: 'new', initialCluster: configured };
  const configuredUrls = new Set(configured.map((p) => p.peerUrl));
  for (const a of answers) {
    const me = a.members.find((m) => m.ID === a.memberId);
    if (me === undefined || !me.peerURLs.map(norm).includes(a.peer.peerUrl)) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the etcd at ${a.peer.peerUrl} (${a.peer.name}) answers, but as a member its cluster does not list under that peer URL (its members: ${describe(a.members)}): it is not part of this cluster; nothing was changed`);
    }
    if (me.name !== '' && me.name !== a.peer.name) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the etcd at ${a.peer.peerUrl} answers as member ${me.name}, not ${a.peer.name}: it is not part of this cluster; nothing was changed`);
    }
    const strangers = a.members.filter((m) => !m.peerURLs.map(norm).some((u) => configuredUrls.has(u)));
    if (strangers.length > 0) {
      throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the etcd cluster at ${a.peer.peerUrl} lists members that are not in ${formatInitialCluster(configured)} (${describe(strangers)}): it is not this cluster; nothing was changed`);
    }
  }
  const ids = new Set(answers.map((a) => a.clusterId));
  if (ids.size > 1) {
    throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the peers answer for different etcd clusters (${answers.map((a) => `${a.peer.name}: ${a.clusterId}`).join(', ')}); nothing was changed`);
  }
  // the one that answered with most started members knows the membership best (all agree once raft has applied it)
  const best = [...answers].sort((x, y) => y.members.filter(started).length - x.members.filter(started).length)[0] as PeerAnswer;
  const members = best.members;
  // no member has started: the first bootstrap, the others are up and waiting for a quorum
  if (!members.some(started)) return { kind: 'new', initialCluster: configured };
  const entry = members.find((m) => m.name === self.name || m.peerURLs.map(norm).includes(self.peerUrl));
  // listed but never started: an earlier add (or the first bootstrap's list) waits for it
  if (entry !== undefined && !started(entry)) return { kind: 'rejoin', add: false, members };
  if (entry !== undefined) return { kind: 'rejoin', remove: entry.ID, add: true, members: members.filter((m) => m.ID !== entry.ID) };
  if (members.length < configured.length) return { kind: 'rejoin', add: true, members };
  throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `the etcd cluster has ${members.length} members (${describe(members)}), none of them ${self.name} at ${self.peerUrl}: no room to add it; nothing was changed`);
}

/** The initial cluster of an `existing` start: every member by name (this one, the unstarted ones by their configured name). Pure. */
export function existingCluster(selfName: string, selfId: string | undefined, configured: readonly Peer[], members: readonly Pick<IMember, 'ID' | 'name' | 'peerURLs'>[]): Peer[] {
  const out: Peer[] = [];
  for (const m of members) {
    for (const u of m.peerURLs.map(norm)) {
      const name = m.ID === selfId ? selfName : m.name !== '' ? m.name : configured.find((p) => p.peerUrl === u)?.name;
      if (name === undefined || name === '') throw new IsthmusError(ErrorCodes.FAILED_PRECONDITION, `etcd member ${m.ID} at ${u} has no name and is not in the initial cluster`);
      out.push({ name, peerUrl: u });
    }
  }
  return out;
}

export interface BootstrapOptions {
  readonly name: string;
  readonly initialCluster: readonly Peer[];
  readonly dataDir: string;
  /** Where to write etcd's config file. */
  readonly configFile: string;
  readonly listenClientUrls: string;
  readonly listenPeerUrls: string;
  /** The port of every member's client URL (its host is its peer URL's). */
  readonly clientPort: number;
  /** How long to wait for a peer to answer before deciding that no cluster exists (ms). */
  readonly probeMs: number;
  /** Deadline of one membership change (ms); past it the cluster likely has no quorum. */
  readonly changeTimeoutMs: number;
  /** More settings for the config file, e.g. auto-compaction-retention. */
  readonly extra: Readonly<Record<string, string | number | boolean>>;
  readonly logger: Logger;
}

/** The client URL of a member: its peer URL's scheme and host, the client port. */
export function clientUrl(peerUrl: string, port: number): string {
  const u = new URL(peerUrl);
  u.port = String(port);
  return norm(u.toString());
}

/** True when etcd would start from this data dir: it holds a write-ahead log. A dir it cannot read is an error, never "empty". */
export async function hasWal(dataDir: string): Promise<boolean> {
  try {
    return (await readdir(join(dataDir, 'member', 'wal'))).some((f) => f.endsWith('.wal'));
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new IsthmusError(ErrorCodes.PERMISSION_DENIED, `cannot tell whether ${dataDir} holds etcd data: ${messageOf(err)}; run the bootstrap as the user etcd runs as (nothing was changed)`);
  }
}

/** Deadline of one question to a peer: its first call also connects. */
const ASK_MS = 3_000;

async function ask(peer: Peer, clientPort: number, deadlineMs: number): Promise<PeerAnswer> {
  const client = new Etcd3({ hosts: [clientUrl(peer.peerUrl, clientPort)], dialTimeout: deadlineMs });
  try {
    const deadline = Date.now() + deadlineMs;
    const status = await client.maintenance.status({ deadline });
    const list = await client.cluster.memberList({}, { deadline });
    return { peer, clusterId: status.header.cluster_id, memberId: status.header.member_id, members: list.members.map((m) => ({ ID: m.ID, name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs })) };
  } finally {
    client.close();
  }
}

/** Asks every other member, again and again for up to `probeMs`, until at least one answers. */
async function probe(o: BootstrapOptions): Promise<PeerAnswer[]> {
  const others = o.initialCluster.filter((p) => p.name !== o.name);
  const until = Date.now() + o.probeMs;
  for (;;) {
    const results = await Promise.allSettled(others.map((p) => ask(p, o.clientPort, ASK_MS)));
    const answers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    results.forEach((r, i) => {
      if (r.status === 'rejected') o.logger.debug({ peer: others[i]?.name, err: messageOf(r.reason) }, 'peer did not answer');
    });
    if (answers.length > 0 || Date.now() >= until) return answers;
    await sleep(systemClock, 500);
  }
}

/** etcd's answers to a membership change that a moment later may succeed: it checks that its peers have been connected for a while. */
const TRANSIENT = /unhealthy cluster|not enough started members|leader changed|no leader|timed out|deadline exceeded|unavailable/i;

async function change<T>(what: string, hosts: readonly string[], timeoutMs: number, logger: Logger, f: (c: Etcd3, deadline: Date) => Promise<T>): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const client = new Etcd3({ hosts: [...hosts], dialTimeout: Math.max(1, until - Date.now()) });
    try {
      return await f(client, new Date(until));
    } catch (err) {
      if (!TRANSIENT.test(messageOf(err)) || Date.now() + 1_000 >= until) {
        throw new IsthmusError(ErrorCodes.UNAVAILABLE, `etcd ${what} failed within ${timeoutMs} ms through ${hosts.join(', ')}: ${messageOf(err)} (has the cluster lost its quorum? then no member can rejoin until a majority is back); the data of the running members is untouched`);
      }
      logger.info({ err: messageOf(err) }, `etcd ${what}: retrying`);
    } finally {
      client.close();
    }
    await sleep(systemClock, 1_000);
  }
}

/** Decides, changes the membership when rejoining, and writes etcd's config file. Returns the decision and the config. */
export async function etcdBootstrap(o: BootstrapOptions): Promise<{ decision: Decision; config: Record<string, string | number | boolean> }> {
  const self = o.initialCluster.find((p) => p.name === o.name);
  if (self === undefined) throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `member ${o.name} is not in the initial cluster ${formatInitialCluster(o.initialCluster)}`);
  const hasData = await hasWal(o.dataDir);
  const answers = hasData || o.initialCluster.length === 1 ? [] : await probe(o);
  const decision = decide(o.name, o.initialCluster, hasData, answers);
  let initialCluster: readonly Peer[] = o.initialCluster;
  let state: 'new' | 'existing' = 'new';
  if (decision.kind === 'rejoin') {
    // anything in member/ without a log is from a start that never got going: set it aside
    const stale = join(o.dataDir, 'member');
    await rename(stale, `${stale}.stale-${Date.now()}`).then(() => o.logger.warn({ dir: stale }, 'set aside a member dir without a write-ahead log'), () => undefined);
    const hosts = answers.map((a) => clientUrl(a.peer.peerUrl, o.clientPort));
    let members = decision.members;
    let selfId: string | undefined;
    if (decision.remove !== undefined) {
      const id = decision.remove;
      await change(`member remove ${id} (${o.name}'s stale entry)`, hosts, o.changeTimeoutMs, o.logger, (c, deadline) => c.cluster.memberRemove({ ID: id }, { deadline }));
      o.logger.info({ member: o.name, id }, 'removed the stale member entry');
    }
    if (decision.add) {
      const added = await change(`member add ${o.name} ${self.peerUrl}`, hosts, o.changeTimeoutMs, o.logger, (c, deadline) => c.cluster.memberAdd({ peerURLs: [self.peerUrl] }, { deadline }));
      selfId = added.member.ID;
      members = added.members;
      o.logger.info({ member: o.name, id: selfId, peerUrl: self.peerUrl }, 'added this member');
    } else {
      selfId = members.find((m) => m.peerURLs.map(norm).includes(self.peerUrl))?.ID;
    }
    initialCluster = existingCluster(o.name, selfId, o.initialCluster, members);
    state = 'existing';
  }
  const config: Record<string, string | number | boolean> = {
    name: o.name,
    'data-dir': o.dataDir,
    'listen-client-urls': o.listenClientUrls,
    'advertise-client-urls': clientUrl(self.peerUrl, o.clientPort),
    'listen-peer-urls': o.listenPeerUrls,
    'initial-advertise-peer-urls': self.peerUrl,
    'initial-cluster': formatInitialCluster(initialCluster),
    'initial-cluster-state': state,
    ...o.extra,
  };
  await mkdir(dirname(o.configFile), { recursive: true });
  // JSON is YAML: etcd reads it as its config file
  await writeFile(o.configFile, `${JSON.stringify(config, null, 2)}\n`);
  o.logger.info({ member: o.name, decision: decision.kind, state, initialCluster: config['initial-cluster'], configFile: o.configFile }, decision.kind === 'data' ? 'data present: starting as usual' : decision.kind === 'new' ? 'no peer answers with a started cluster: starting a new one' : 'rejoining the running cluster');
  return { decision, config };
}
