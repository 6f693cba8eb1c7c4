import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientUrl, decide, existingCluster, hasWal, parseInitialCluster, type PeerAnswer } from './etcd-bootstrap.ts';

const cfg = parseInitialCluster('e0=http://e0.etcd:2380,e1=http://e1.etcd:2380,e2=http://e2.etcd:2380');
const peer = (i: number): { name: string; peerUrl: string } => cfg[i] as { name: string; peerUrl: string };
const member = (i: number, started = true, id = `10${i}`): PeerAnswer['members'][number] =>
  ({ ID: id, name: started ? `e${i}` : '', peerURLs: [`http://e${i}.etcd:2380`], clientURLs: started ? [`http://e${i}.etcd:2379`] : [] });
const answer = (from: number, members: PeerAnswer['members'], clusterId = 'c1'): PeerAnswer => ({ peer: peer(from), clusterId, memberId: `10${from}`, members });

test('initial cluster: parsed, refused when malformed', () => {
  assert.equal(cfg[1], { name: 'e1', peerUrl: 'http://e1.etcd:2380' });
  assert.throws(() => parseInitialCluster('e0'), /is not name=http/);
  assert.throws(() => parseInitialCluster('e0=http://a:1,e0=http://b:1'), /twice/);
  assert.throws(() => parseInitialCluster(''), /no member/);
  assert.is(clientUrl('http://e1.etcd:2380', 2379), 'http://e1.etcd:2379');
});

test('data present: start as usual, whatever the peers say', () => {
  assert.equal(decide('e1', cfg, true, [answer(0, [member(0), member(1), member(2)])]), { kind: 'data' });
});

test('empty and no peer answers: the first bootstrap, new with the configured members', () => {
  assert.equal(decide('e0', cfg, false, []), { kind: 'new', initialCluster: cfg });
});

test('empty while the others wait for a quorum (none started): new, not existing', () => {
  const forming = [member(0, false, '100'), member(1, false, '101'), member(2, false, '102')].map((m, i) => ({ ...m, name: `e${i}` }));
  assert.equal(decide('e2', cfg, false, [answer(0, forming)]).kind, 'new');
});

test('empty, the cluster lists this member as started: remove it, add it back, existing', () => {
  const d = decide('e1', cfg, false, [answer(0, [member(0), member(1), member(2)]), answer(2, [member(0), member(1), member(2)])]);
  assert.equal(d, { kind: 'rejoin', remove: '101', add: true, members: [member(0), member(2)] });
  // the add returns the members with the new one unstarted: it takes this member's name
  const after = [member(0), member(2), { ID: '999', name: '', peerURLs: ['http://e1.etcd:2380'], clientURLs: [] }];
  assert.equal(existingCluster('e1', '999', cfg, after).map((p) => `${p.name}=${p.peerUrl}`), ['e0=http://e0.etcd:2380', 'e2=http://e2.etcd:2380', 'e1=http://e1.etcd:2380']);
});

test('empty, this member added before but never started: no change, existing', () => {
  const members = [member(0), member(1, false, '555'), member(2)];
  assert.equal(decide('e1', cfg, false, [answer(0, members)]), { kind: 'rejoin', add: false, members });
  assert.equal(existingCluster('e1', '555', cfg, members).map((p) => p.name), ['e0', 'e1', 'e2']);
});

test('empty, the cluster has fewer members than configured (an earlier remove without the add): add, existing', () => {
  assert.equal(decide('e1', cfg, false, [answer(0, [member(0), member(2)])]), { kind: 'rejoin', add: true, members: [member(0), member(2)] });
});

test('the peer that answered the most started members decides', () => {
  const lagging = [member(0), member(1, false, '777'), member(2)];
  const current = [member(0), member(1), member(2)];
  assert.equal(decide('e1', cfg, false, [answer(2, lagging), answer(0, current)]).kind, 'rejoin');
  assert.equal((decide('e1', cfg, false, [answer(2, lagging), answer(0, current)]) as { remove?: string }).remove, '101');
});

test('bad answers: a peer not of this cluster, strangers, disagreeing peers, a full cluster without this member', () => {
  assert.throws(() => decide('e1', cfg, false, [{ ...answer(0, [member(0)]), memberId: '42' }]), /does not list under that peer URL.*nothing was changed/);
  assert.throws(() => decide('e1', cfg, false, [answer(0, [{ ...member(0), name: 'other' }])]), /answers as member other, not e0/);
  const stranger = { ID: '9', name: 'x', peerURLs: ['http://x:2380'], clientURLs: ['http://x:2379'] };
  assert.throws(() => decide('e1', cfg, false, [answer(0, [member(0), stranger])]), /not in e0=.*\(x http:\/\/x:2380\)/);
  assert.throws(() => decide('e1', cfg, false, [answer(0, [member(0), member(2)], 'a'), answer(2, [member(0), member(2)], 'b')]), /different etcd clusters/);
  const two = parseInitialCluster('e0=http://e0.etcd:2380,e1=http://e1.etcd:2380');
  assert.throws(() => decide('e1', two, false, [answer(0, [member(0), { ...member(2), peerURLs: ['http://e0.etcd:2380'] }])]), /no room to add it/);
  assert.throws(() => decide('e9', cfg, false, []), /not in the initial cluster/);
});

test('data: a write-ahead log; missing is empty; an unreadable dir is an error, never empty', async () => {
  const d = await mkdtemp(join(tmpdir(), 'isthmus-wal-'));
  try {
    assert.is(await hasWal(join(d, 'none')), false);
    await mkdir(join(d, 'member', 'wal'), { recursive: true });
    assert.is(await hasWal(d), false);
    await writeFile(join(d, 'member', 'wal', '0000000000000000-0000000000000000.wal'), '');
    assert.is(await hasWal(d), true);
    if (process.getuid?.() !== 0) {
      await chmod(join(d, 'member'), 0o000);
      try {
        await hasWal(d).then(() => assert.unreachable('an unreadable dir must throw'), (err: unknown) => assert.match(String(err), /cannot tell whether/));
      } finally {
        await chmod(join(d, 'member'), 0o755);
      }
    }
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});

test.run();
