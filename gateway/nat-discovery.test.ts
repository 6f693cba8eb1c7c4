import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeClock, flushPromises } from '../core/index.ts';
import { desiredCables, guessVerdict, publicAddressOf, type RemoteCluster, type RemoteEndpoint } from './desired.ts';
import { NatDiscovery, type NatCandidate } from './nat-discovery.ts';
import type { NatProbeResult, NatProbeTarget } from './nat-probe.ts';

/** A probe function whose calls the test answers by hand. */
function fakeProbe(): { probe: (t: NatProbeTarget) => Promise<NatProbeResult>; calls: { target: NatProbeTarget; answer: (r: NatProbeResult) => void }[] } {
  const calls: { target: NatProbeTarget; answer: (r: NatProbeResult) => void }[] = [];
  return { calls, probe: (target) => new Promise((answer) => calls.push({ target, answer })) };
}

const natted: RemoteEndpoint = {
  clusterId: 'c3', hostname: 'c3-n1', privateIp: '172.28.3.10', publicIp: '', observedIp: '172.29.0.13', port: 51820, natProbePort: 4490,
  driver: 'wireguard', backend: {}, revision: 7,
};
const candidate = (e: RemoteEndpoint): NatCandidate => ({ cluster: e.clusterId, privateIp: e.privateIp, publicIp: publicAddressOf(e), port: e.natProbePort ?? 0, guess: guessVerdict(e) });
const PRIVATE: NatProbeResult = { verdict: 'private', seen: { ip: '172.29.0.11', port: 4490 }, behindNat: false };

function setup(reprobeMs = 30_000) {
  const clock = new FakeClock();
  const fake = fakeProbe();
  let changes = 0;
  const nat = new NatDiscovery({ probe: fake.probe, onChange: () => void changes++, clock, reprobeMs });
  return { clock, fake, nat, changes: () => changes };
}

test('a new endpoint is probed once, pending until its verdict; a verdict that changes the choice changes the cable', async () => {
  const { fake, nat, changes } = setup();
  const clusters = new Map<string, RemoteCluster>([['c3', { clusterId: 'c3', cidrs: ['10.3.0.0/16'] }]]);
  const local = { clusterId: 'c1', driver: 'wireguard', behindNat: false, forceNatTraversal: false };
  nat.update([candidate(natted)]);
  nat.update([candidate(natted)]);
  assert.is(fake.calls.length, 1, 'the same endpoint is not probed twice');
  assert.equal(fake.calls[0]?.target, { cluster: 'c3', privateIp: '172.28.3.10', publicIp: '172.29.0.13', port: 4490 });
  assert.equal([...nat.states()], [['c3', 'pending']]);
  // before the verdict: the guess (behind NAT: its public address)
  assert.is(desiredCables(local, [natted], clusters, nat.verdicts())[0]?.remoteIp, '172.29.0.13');
  fake.calls[0]?.answer(PRIVATE);
  await flushPromises();
  assert.is(changes(), 1);
  assert.equal([...nat.states()], [['c3', 'private']]);
  const [cable] = desiredCables(local, [natted], clusters, nat.verdicts());
  assert.equal([cable?.remoteIp, cable?.natTraversal], ['172.28.3.10', true]);
});

test('a verdict equal to the guess, or no answer, does not reconcile again; no answer keeps the guess', async () => {
  const { fake, nat, changes } = setup();
  const open: RemoteEndpoint = { ...natted, clusterId: 'c2', privateIp: '172.29.0.12', observedIp: '172.29.0.12' };
  nat.update([candidate(natted), candidate(open)]);
  fake.calls[0]?.answer({ verdict: undefined, behindNat: false });
  fake.calls[1]?.answer(PRIVATE);
  await flushPromises();
  assert.is(changes(), 0);
  assert.equal([...nat.states()], [['c3', 'unanswered'], ['c2', 'private']]);
  assert.equal([...nat.verdicts()], [['c2', 'private']]);
});

test('seen behind NAT by one remote: NAT traversal on that cable only; natAddress needs two remotes agreeing (issue 10 finding 7)', async () => {
  const { fake, nat, changes } = setup();
  const open: RemoteEndpoint = { ...natted, clusterId: 'c2', privateIp: '172.29.0.12', observedIp: '172.29.0.12' };
  const c4: RemoteEndpoint = { ...open, clusterId: 'c4', privateIp: '172.29.0.14', observedIp: '172.29.0.14' };
  const clusters = new Map<string, RemoteCluster>(['c2', 'c3', 'c4'].map((c, i) => [c, { clusterId: c, cidrs: [`10.${i + 2}.0.0/16`] }]));
  const local = { clusterId: 'c1', driver: 'wireguard', behindNat: false, forceNatTraversal: false };
  nat.update([candidate(natted), candidate(open), candidate(c4)]);
  assert.is(nat.natAddress, undefined);
  // c3 lies: "I saw you at 203.0.113.9"
  fake.calls[0]?.answer({ verdict: 'public', seen: { ip: '203.0.113.9', port: 61000 }, behindNat: true });
  fake.calls[1]?.answer(PRIVATE);
  await flushPromises();
  assert.is(changes(), 1, 'the verdict is the guess, but NAT traversal towards c3 changes');
  assert.is(nat.natAddress, undefined, 'one remote does not decide this gateway\'s NAT status');
  const cables = desiredCables({ ...local, behindNat: nat.natAddress !== undefined }, [natted, open, c4], clusters, nat.verdicts(), nat.seenBehindNatBy());
  assert.equal(cables.map((c) => [c.remoteCluster, c.natTraversal]), [['c2', false], ['c3', true], ['c4', false]], 'only the cable to c3 is affected');
  // a second remote seeing the same address: now this gateway is behind NAT
  fake.calls[2]?.answer({ verdict: 'private', seen: { ip: '203.0.113.9', port: 61001 }, behindNat: true });
  await flushPromises();
  assert.is(nat.natAddress, '203.0.113.9');
});

test('changed addresses are probed again and the old answer is dropped; a cluster that is gone loses its verdict', async () => {
  const { fake, nat, changes } = setup();
  nat.update([candidate(natted)]);
  const moved = { ...natted, observedIp: '172.29.0.23' };
  nat.update([candidate(moved)]);
  assert.is(fake.calls.length, 2);
  fake.calls[0]?.answer({ verdict: 'public', seen: { ip: '203.0.113.9', port: 1 }, behindNat: true });
  await flushPromises();
  assert.equal([changes(), [...nat.states()], nat.natAddress], [0, [['c3', 'pending']], undefined]);
  fake.calls[1]?.answer(PRIVATE);
  await flushPromises();
  assert.equal([...nat.verdicts()], [['c3', 'private']]);
  nat.update([]);
  assert.equal([...nat.verdicts()], []);
  assert.equal([...nat.states()], []);
  // gone while probed: the late answer is dropped
  nat.update([candidate(natted)]);
  nat.clear();
  fake.calls[2]?.answer(PRIVATE);
  await flushPromises();
  assert.equal([changes(), [...nat.verdicts()]], [1, []]);
});

test('a cable in error is probed again every reprobeMs, never twice at once', async () => {
  const { clock, fake, nat } = setup(30_000);
  nat.update([candidate(natted)]);
  nat.reprobe(['c3']);
  assert.is(fake.calls.length, 1, 'not while a probe is under way');
  fake.calls[0]?.answer(PRIVATE);
  await flushPromises();
  await clock.advance(29_999);
  nat.reprobe(['c3', 'c9']);
  assert.is(fake.calls.length, 1, 'not before reprobeMs');
  await clock.advance(1);
  nat.reprobe(['c3']);
  assert.is(fake.calls.length, 2);
  assert.equal([...nat.states()], [['c3', 'private']], 'the last answer stands while probing again');
  fake.calls[1]?.answer({ verdict: undefined, behindNat: false });
  await flushPromises();
  assert.equal([...nat.states()], [['c3', 'unanswered']]);
});

test.run();
