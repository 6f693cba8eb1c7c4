import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, FakeRunner, isIsthmusError, wireguardKeyPair } from '../../core/index.ts';
import { Wg, configText, formatEndpoint, parseDump, peerArgs } from './wg.ts';



const priv = wireguardKeyPair();
const peer1 = wireguardKeyPair().publicKey;
const peer2 = wireguardKeyPair().publicKey;
const psk = wireguardKeyPair().privateKey;

const DUMP = [
  [priv.privateKey, priv.publicKey, '51820', 'off'].join('\t'),
  [peer1, '(none)', '172.31.1.11:51821', '10.201.2.0/24,10.202.0.0/16', '1700000000', '1234', '5678', '25'].join('\t'),
  [peer2, psk, '(none)', '(none)', '0', '0', '0', 'off'].join('\t'),
  '',
].join('\n');

async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

test('parseDump: interface and peers, typed; no private or preshared key kept', () => {
  const d = parseDump(DUMP);
  assert.equal(d.interface, { publicKey: priv.publicKey, listenPort: 51820, fwmark: undefined });
  assert.equal(d.peers[0], {
    publicKey: peer1, hasPresharedKey: false, endpoint: '172.31.1.11:51821', allowedIps: ['10.201.2.0/24', '10.202.0.0/16'],
    latestHandshake: 1_700_000_000_000, rxBytes: 1234, txBytes: 5678, persistentKeepalive: 25,
  });
  assert.equal(d.peers[1], {
    publicKey: peer2, hasPresharedKey: true, endpoint: undefined, allowedIps: [], latestHandshake: undefined, rxBytes: 0, txBytes: 0, persistentKeepalive: undefined,
  });
  const text = JSON.stringify(d);
  assert.not.ok(text.includes(priv.privateKey));
  assert.not.ok(text.includes(psk));
});

test('parseDump: a fresh device (no key, fwmark set) and IPv6 endpoints', () => {
  const d = parseDump(`(none)\t(none)\t0\t0x42\n${peer1}\t(none)\t[fd00::2]:51820\tfd01::/64\t0\t0\t0\toff\n`);
  assert.is(d.interface.publicKey, undefined);
  assert.is(d.interface.fwmark, 0x42);
  assert.is(d.peers[0]?.endpoint, '[fd00::2]:51820');
});

test('parseDump: malformed output is an INTERNAL error that quotes no line', () => {
  for (const bad of ['', `${priv.privateKey}\tx\n`, `${priv.privateKey}\t(none)\tnotaport\toff\n`, `${DUMP}${peer1}\tshort\n`]) {
    try {
      parseDump(bad);
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.ok(isIsthmusError(err, ErrorCodes.INTERNAL));
      assert.not.ok((err as Error).message.includes(priv.privateKey));
    }
  }
});

test('formatEndpoint brackets IPv6; peerArgs and configText are exact', () => {
  assert.is(formatEndpoint('10.0.0.1', 51820), '10.0.0.1:51820');
  assert.is(formatEndpoint('fd00::1', 51820), '[fd00::1]:51820');
  assert.equal(peerArgs({ publicKey: peer1, endpoint: { ip: '10.0.0.2', port: 4000 }, allowedIps: ['10.1.0.0/16', '10.2.0.0/16'], persistentKeepalive: 25 }),
    ['peer', peer1, 'endpoint', '10.0.0.2:4000', 'persistent-keepalive', '25', 'allowed-ips', '10.1.0.0/16,10.2.0.0/16']);
  assert.equal(peerArgs({ publicKey: peer1, allowedIps: ['10.1.0.0/16'] }), ['peer', peer1, 'persistent-keepalive', 'off', 'allowed-ips', '10.1.0.0/16']);
  assert.is(configText({ privateKey: priv.privateKey, listenPort: 51820, peers: [{ publicKey: peer1, endpoint: { ip: 'fd00::2', port: 1 }, allowedIps: ['fd01::/64'], persistentKeepalive: 25 }] }),
    `[Interface]\nPrivateKey = ${priv.privateKey}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${peer1}\nAllowedIPs = fd01::/64\nEndpoint = [fd00::2]:1\nPersistentKeepalive = 25\n`);
});

test('setPrivateKey and syncconf pass the key on stdin through a pipe, never as an argument', async () => {
  const r = new FakeRunner();
  const wg = new Wg(r);
  await wg.setPrivateKey('isthmus-wg', priv.privateKey);
  await wg.syncconf('isthmus-wg', { privateKey: priv.privateKey, listenPort: 1, peers: [] });
  assert.equal(r.lines(), [
    'sh -c cat | wg "$@" wg set isthmus-wg private-key /dev/stdin',
    'sh -c cat | wg "$@" wg syncconf isthmus-wg /dev/stdin',
  ]);
  assert.is(r.calls[0]?.options.input, `${priv.privateKey}\n`);
  assert.match(r.calls[1]?.options.input ?? '', `PrivateKey = ${priv.privateKey}`);
  for (const c of r.calls) assert.not.ok(c.args.some((a) => a.includes(priv.privateKey)));
});

test('setPeer, removePeer, setListenPort, startUserspace, removeSocket: exact commands', async () => {
  const r = new FakeRunner();
  const wg = new Wg(r);
  await wg.setPeer('isthmus-wg', { publicKey: peer1, endpoint: { ip: '10.0.0.2', port: 51820 }, allowedIps: ['10.1.0.0/16'] });
  await wg.removePeer('isthmus-wg', peer2);
  await wg.setListenPort('isthmus-wg', 4500);
  await wg.startUserspace('isthmus-wg');
  await wg.removeSocket('isthmus-wg');
  assert.equal(r.lines(), [
    `wg set isthmus-wg peer ${peer1} endpoint 10.0.0.2:51820 persistent-keepalive off allowed-ips 10.1.0.0/16`,
    `wg set isthmus-wg peer ${peer2} remove`,
    'wg set isthmus-wg listen-port 4500',
    'wireguard-go isthmus-wg',
    'rm -f /var/run/wireguard/isthmus-wg.sock',
  ]);
  assert.equal(r.calls[3]?.options.env, { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' });
});

test('socketDir: wg and wireguard-go run with the directory bind-mounted on /var/run/wireguard in a private mount namespace', async () => {
  const r = new FakeRunner().when('unshare', [], { stdout: DUMP });
  const wg = new Wg(r, { socketDir: '/tmp/x/a' });
  assert.is((await wg.showDump('isthmus-wg'))?.interface.publicKey, priv.publicKey);
  await wg.setPrivateKey('isthmus-wg', priv.privateKey);
  const [show, key] = r.calls;
  assert.is(show?.command, 'unshare');
  assert.equal(show?.args.slice(0, 3), ['-m', 'sh', '-c']);
  assert.match(show?.args[3] ?? '', /mount --bind "\$1" \/var\/run\/wireguard/);
  assert.equal(show?.args.slice(4), ['isthmus-wg-sock', '/tmp/x/a', 'wg', 'show', 'isthmus-wg', 'dump']);
  assert.equal(key?.args.slice(4), ['isthmus-wg-sock', '/tmp/x/a', 'sh', '-c', 'cat | wg "$@"', 'wg', 'set', 'isthmus-wg', 'private-key', '/dev/stdin']);
});

test('socketDir without CAP_SYS_ADMIN: NOT_ROOT saying to leave socketDir unset', async () => {
  const wg = new Wg(new FakeRunner().when('unshare', [], { code: 1, stderr: 'unshare: unshare failed: Operation not permitted\n' }), { socketDir: '/tmp/x/a' });
  const err = await rejects(wg.version());
  assert.ok(isIsthmusError(err, ErrorCodes.NOT_ROOT), String(err));
  assert.match(err.message, /CAP_SYS_ADMIN/);
  assert.match(err.message, /leave socketDir unset/);
});

test('showDump: undefined for a missing device or a dead wireguard-go; other failures quote stderr, never stdout', async () => {
  const r = new FakeRunner().when('wg', ['show', 'gone'], { code: 1, stderr: 'Unable to access interface: No such device\n' })
    .when('wg', ['show', 'dead'], { code: 1, stderr: 'Unable to access interface: Protocol not supported\n' })
    .when('wg', ['show', 'odd'], { code: 1, stdout: DUMP, stderr: 'something else\n' })
    .when('wg', ['show', 'ok'], { stdout: DUMP });
  const wg = new Wg(r);
  assert.is(await wg.showDump('gone'), undefined);
  assert.is(await wg.showDump('dead'), undefined);
  assert.is((await wg.showDump('ok'))?.peers.length, 2);
  const err = await rejects(wg.showDump('odd'));
  assert.ok(isIsthmusError(err, ErrorCodes.COMMAND_FAILED));
  assert.match(err.message, /something else/);
  assert.not.ok(err.message.includes(priv.privateKey));
  assert.not.ok(JSON.stringify((err as Error & { context: unknown }).context).includes(priv.privateKey));
});

test('wg or wireguard-go missing: MISSING_DEPENDENCY naming the Debian package, however the runner reports it', async () => {
  const viaNetns = new Wg(new FakeRunner().when('wg', [], { code: 255, stderr: 'exec of "wg" failed: No such file or directory\n' }));
  const viaSh = new Wg(new FakeRunner().on((c) => (c.command === 'sh' ? { code: 127, stderr: 'sh: 1: wg: not found\n' } : undefined)));
  const noGo = new Wg(new FakeRunner().when('wireguard-go', [], { code: 255, stderr: 'exec of "wireguard-go" failed: No such file or directory\n' }));
  const e1 = await rejects(viaNetns.version());
  const e2 = await rejects(viaSh.setPrivateKey('isthmus-wg', priv.privateKey));
  const e3 = await rejects(noGo.startUserspace('isthmus-wg'));
  for (const e of [e1, e2]) {
    assert.ok(isIsthmusError(e, ErrorCodes.MISSING_DEPENDENCY), String(e));
    assert.match(e.message, /wireguard-tools/);
  }
  assert.ok(isIsthmusError(e3, ErrorCodes.MISSING_DEPENDENCY));
  assert.match(e3.message, /Debian package wireguard-go/);
});

test.run();
