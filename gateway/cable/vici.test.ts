import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../../core/index.ts';
import {
  MAX_NAME, MAX_SEGMENT, MAX_VALUE, PacketType, SegmentReader, ViciClient, decodeMessage, decodePacket,
  encodeMessage, encodePacket, type Packet, type ViciMessage,
} from './vici.ts';
import { errorCodeAsync } from '../../core/testing.ts';

// ---- codec ----

test('encodes the example of the protocol description byte for byte', () => {
  const msg: ViciMessage = { key1: 'value1', section1: { 'sub-section': { key2: 'value2' }, list1: ['item1', 'item2'] } };
  const expected = Buffer.concat([
    Buffer.from([3, 4]), Buffer.from('key1'), Buffer.from([0, 6]), Buffer.from('value1'),
    Buffer.from([1, 8]), Buffer.from('section1'),
    Buffer.from([1, 11]), Buffer.from('sub-section'),
    Buffer.from([3, 4]), Buffer.from('key2'), Buffer.from([0, 6]), Buffer.from('value2'),
    Buffer.from([2]),
    Buffer.from([4, 5]), Buffer.from('list1'),
    Buffer.from([5, 0, 5]), Buffer.from('item1'),
    Buffer.from([5, 0, 5]), Buffer.from('item2'),
    Buffer.from([6]),
    Buffer.from([2]),
  ]);
  assert.equal(encodeMessage(msg).toString('hex'), expected.toString('hex'));
  assert.equal(decodeMessage(expected), msg);
});

const roundTrips: [string, ViciMessage][] = [
  ['empty', {}],
  ['one key', { a: 'b' }],
  ['empty value and empty list', { a: '', l: [] }],
  ['deeply nested', { a: { b: { c: { d: { e: 'deep', l: ['x'] } } } }, z: 'after' }],
  ['sibling sections and lists', { s1: { k: '1' }, s2: { k: '2', l: ['a', 'b', ''] }, l: ['q'] }],
  ['utf-8 values', { msg: 'grüße — 你好' }],
  ['load-conn shape', { 'isthmus-b': { local_addrs: ['192.0.2.1'], local: { auth: 'pubkey', id: 'gw.a' }, children: { net: { local_ts: ['10.1.0.0/16'] } } } }],
];
for (const [name, msg] of roundTrips) {
  test(`round trip: ${name}`, () => {
    assert.equal(decodeMessage(encodeMessage(msg)), msg);
  });
}

test('binary values come back as Buffers, text as strings', () => {
  const bin = Buffer.from([0xff, 0x00, 0xfe, 0x80, 0x01]);
  const out = decodeMessage(encodeMessage({ data: bin, text: 'plain', list: [bin, 'x'] }));
  assert.ok(Buffer.isBuffer(out['data']));
  assert.equal((out['data'] as Buffer).toString('hex'), 'ff00fe8001');
  assert.is(out['text'], 'plain');
  const list = out['list'] as readonly (string | Buffer)[];
  assert.ok(Buffer.isBuffer(list[0]));
  assert.is(list[1], 'x');
});

test('maximum name and value lengths encode; one more is refused', async () => {
  const name = 'n'.repeat(MAX_NAME);
  const value = 'v'.repeat(MAX_VALUE);
  const msg = { [name]: value, l: [value] };
  assert.equal(decodeMessage(encodeMessage(msg)), msg);
  assert.is(await errorCodeAsync(() => encodeMessage({ ['n'.repeat(MAX_NAME + 1)]: 'x' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ k: 'v'.repeat(MAX_VALUE + 1) })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ l: ['v'.repeat(MAX_VALUE + 1)] })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ '': 'x' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ 'naïve': 'x' })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ n: 5 } as unknown as ViciMessage)), ErrorCodes.INVALID_ARGUMENT);
  assert.is(await errorCodeAsync(() => encodeMessage({ l: [{}] } as unknown as ViciMessage)), ErrorCodes.INVALID_ARGUMENT);
});

test('a packet larger than 512 KiB is refused', async () => {
  const big: ViciMessage = {};
  for (let i = 0; i < 9; i++) big[`k${i}`] = 'x'.repeat(MAX_VALUE);
  assert.ok(encodeMessage(big).length > MAX_SEGMENT);
  assert.is(await errorCodeAsync(() => encodePacket({ type: PacketType.CMD_REQUEST, name: 'load-conn', message: big })), ErrorCodes.INVALID_ARGUMENT);
});

const malformed: [string, number[]][] = [
  ['unknown element type', [9]],
  ['truncated name', [3, 5, 0x61]],
  ['truncated value length', [3, 1, 0x61, 0]],
  ['truncated value', [3, 1, 0x61, 0, 4, 0x62]],
  ['unclosed section', [1, 1, 0x73]],
  ['section end at root', [2]],
  ['unclosed list', [4, 1, 0x6c]],
  ['list item outside a list', [5, 0, 0]],
  ['list end without a list', [6]],
  ['key/value inside a list', [4, 1, 0x6c, 3, 1, 0x61, 0, 0, 6]],
  ['section inside a list', [4, 1, 0x6c, 1, 1, 0x73, 2, 6]],
  ['empty name', [3, 0, 0, 0]],
  ['duplicate key', [3, 1, 0x61, 0, 0, 3, 1, 0x61, 0, 0]],
];
for (const [name, bytes] of malformed) {
  test(`malformed message is INVALID_ARGUMENT: ${name}`, async () => {
    assert.is(await errorCodeAsync(() => decodeMessage(Buffer.from(bytes))), ErrorCodes.INVALID_ARGUMENT);
  });
}

test('packets: named types carry their name, message types their message', () => {
  const cases: Packet[] = [
    { type: PacketType.CMD_REQUEST, name: 'version', message: {} },
    { type: PacketType.CMD_RESPONSE, message: { success: 'yes' } },
    { type: PacketType.CMD_UNKNOWN },
    { type: PacketType.EVENT_REGISTER, name: 'ike-updown' },
    { type: PacketType.EVENT_UNREGISTER, name: 'ike-updown' },
    { type: PacketType.EVENT_CONFIRM },
    { type: PacketType.EVENT_UNKNOWN },
    { type: PacketType.EVENT, name: 'list-sa', message: { 'isthmus-b': { state: 'ESTABLISHED' } } },
  ];
  for (const p of cases) {
    const wire = encodePacket(p);
    assert.is(wire.readUInt32BE(0), wire.length - 4);
    assert.is(wire[4], p.type);
    assert.equal(decodePacket(wire.subarray(4)), p);
  }
  // the register packet is type, name length, name and nothing else
  assert.equal([...encodePacket({ type: PacketType.EVENT_REGISTER, name: 'ab' })], [0, 0, 0, 4, 3, 2, 0x61, 0x62]);
});

test('malformed packets are INVALID_ARGUMENT', async () => {
  for (const bytes of [[], [8], [0, 5, 0x61], [5, 1], [3]]) {
    assert.is(await errorCodeAsync(() => decodePacket(Buffer.from(bytes))), ErrorCodes.INVALID_ARGUMENT, JSON.stringify(bytes));
  }
  assert.is(await errorCodeAsync(() => encodePacket({ type: PacketType.CMD_REQUEST })), ErrorCodes.INVALID_ARGUMENT);
});

test('SegmentReader reassembles segments split anywhere and refuses oversized lengths', async () => {
  const a = encodePacket({ type: PacketType.CMD_RESPONSE, message: { k: 'v'.repeat(300) } });
  const b = encodePacket({ type: PacketType.EVENT_CONFIRM });
  const stream = Buffer.concat([a, b, a]);
  for (const step of [1, 3, 7, 64, stream.length]) {
    const r = new SegmentReader();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; i += step) got.push(...r.push(stream.subarray(i, i + step)));
    assert.is(got.length, 3, `step ${step}`);
    assert.equal(decodePacket(got[2] ?? Buffer.alloc(0)), decodePacket(a.subarray(4)));
  }
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(MAX_SEGMENT + 1);
  assert.is(await errorCodeAsync(() => new SegmentReader().push(huge)), ErrorCodes.INVALID_ARGUMENT);
});

// ---- client against a fake VICI server on a temp Unix socket ----

type Reply = (p: Packet, send: (p: Packet) => void, sock: Socket) => void;

interface Fake {
  readonly path: string;
  readonly seen: Packet[];
  close(): Promise<void>;
}

async function fakeServer(reply: Reply): Promise<Fake> {
  const dir = mkdtempSync(join(tmpdir(), 'vici-'));
  const path = join(dir, 's.vici');
  const seen: Packet[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    const reader = new SegmentReader();
    const send = (p: Packet): void => {
      sock.write(encodePacket(p));
    };
    sock.on('data', (chunk: Buffer) => {
      for (const body of reader.push(chunk)) {
        const p = decodePacket(body);
        seen.push(p);
        reply(p, send, sock);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          r();
        });
      }),
  };
}

/** A small charon: knows version, load-conn (fails on a bad name), list-sas (streams two events), slow. */
const charonLike: Reply = (p, send) => {
  if (p.type === PacketType.EVENT_REGISTER || p.type === PacketType.EVENT_UNREGISTER) {
    send({ type: ['list-sa', 'ike-updown', 'child-updown', 'ike-rekey'].includes(p.name ?? '') ? PacketType.EVENT_CONFIRM : PacketType.EVENT_UNKNOWN });
    return;
  }
  if (p.type !== PacketType.CMD_REQUEST) return;
  switch (p.name) {
    case 'version':
      send({ type: PacketType.CMD_RESPONSE, message: { daemon: 'charon', version: '5.9.8' } });
      break;
    case 'echo':
      send({ type: PacketType.CMD_RESPONSE, message: p.message ?? {} });
      break;
    case 'load-conn':
      if (Object.keys(p.message ?? {})[0] === 'bad') send({ type: PacketType.CMD_RESPONSE, message: { success: 'no', errmsg: 'invalid value for: remote_addrs' } });
      else send({ type: PacketType.CMD_RESPONSE, message: { success: 'yes' } });
      break;
    case 'list-sas':
      send({ type: PacketType.EVENT, name: 'list-sa', message: { 'isthmus-b': { state: 'ESTABLISHED' } } });
      send({ type: PacketType.EVENT, name: 'ike-updown', message: { up: 'yes', 'isthmus-c': { state: 'ESTABLISHED' } } });
      send({ type: PacketType.EVENT, name: 'list-sa', message: { 'isthmus-c': { state: 'CONNECTING' } } });
      send({ type: PacketType.CMD_RESPONSE, message: {} });
      break;
    case 'slow':
      setTimeout(() => send({ type: PacketType.CMD_RESPONSE, message: { done: 'yes' } }), 30);
      break;
    case 'never':
      break;
    default:
      send({ type: PacketType.CMD_UNKNOWN });
  }
};

test('client: request/response, and concurrent requests are answered in order', async () => {
  const fake = await fakeServer(charonLike);
  const c = await ViciClient.connect(fake.path);
  try {
    assert.equal(await c.request('version'), { daemon: 'charon', version: '5.9.8' });
    const [slow, echo, ver] = await Promise.all([c.request('slow'), c.request('echo', { a: { b: ['1', '2'] } }), c.request('version')]);
    assert.equal(slow, { done: 'yes' });
    assert.equal(echo, { a: { b: ['1', '2'] } });
    assert.is(ver['daemon'], 'charon');
    // one in flight at a time: the server saw them in the order they were issued
    assert.equal(fake.seen.filter((p) => p.type === PacketType.CMD_REQUEST).map((p) => p.name), ['version', 'slow', 'echo', 'version']);
  } finally {
    c.close();
    await fake.close();
  }
});

test('client: success=no rejects COMMAND_FAILED with the errmsg; unknown command NOT_FOUND; the connection goes on', async () => {
  const fake = await fakeServer(charonLike);
  const c = await ViciClient.connect(fake.path);
  try {
    try {
      await c.request('load-conn', { bad: { remote_addrs: ['x'] } });
      assert.unreachable('load-conn should fail');
    } catch (err) {
      assert.instance(err, IsthmusError);
      assert.is((err as IsthmusError).code, ErrorCodes.COMMAND_FAILED);
      assert.match((err as IsthmusError).message, 'invalid value for: remote_addrs');
    }
    assert.is(await errorCodeAsync(c.request('no-such-command')), ErrorCodes.NOT_FOUND);
    assert.equal(await c.request('load-conn', { good: {} }), { success: 'yes' });
  } finally {
    c.close();
    await fake.close();
  }
});

test('client: streamed list-sas collects its events; other events go to their handlers', async () => {
  const fake = await fakeServer(charonLike);
  const c = await ViciClient.connect(fake.path);
  const updowns: ViciMessage[] = [];
  try {
    await c.on('ike-updown', (_n, m) => updowns.push(m));
    const { events, response } = await c.stream('list-sas', 'list-sa', { noblock: 'yes' });
    assert.equal(events, [{ 'isthmus-b': { state: 'ESTABLISHED' } }, { 'isthmus-c': { state: 'CONNECTING' } }]);
    assert.equal(response, {});
    assert.equal(updowns, [{ up: 'yes', 'isthmus-c': { state: 'ESTABLISHED' } }]);
    // registered list-sa for the stream, unregistered after
    const regs = fake.seen.filter((p) => p.type === PacketType.EVENT_REGISTER || p.type === PacketType.EVENT_UNREGISTER).map((p) => `${p.type}:${p.name}`);
    assert.equal(regs, [`${PacketType.EVENT_REGISTER}:ike-updown`, `${PacketType.EVENT_REGISTER}:list-sa`, `${PacketType.EVENT_UNREGISTER}:list-sa`]);
    assert.is(await errorCodeAsync(c.on('no-such-event', () => {})), ErrorCodes.NOT_FOUND);
  } finally {
    c.close();
    await fake.close();
  }
});

test('client: concurrent streams each get only their own events', async () => {
  const fake = await fakeServer(charonLike);
  const c = await ViciClient.connect(fake.path);
  try {
    const results = await Promise.all([1, 2, 3].map(() => c.stream('list-sas', 'list-sa')));
    for (const r of results) assert.equal(r.events, [{ 'isthmus-b': { state: 'ESTABLISHED' } }, { 'isthmus-c': { state: 'CONNECTING' } }]);
  } finally {
    c.close();
    await fake.close();
  }
});

test('client: nothing listening is UNAVAILABLE; a server that hangs up fails the request UNAVAILABLE', async () => {
  assert.is(await errorCodeAsync(ViciClient.connect(join(tmpdir(), `nothing-${process.pid}.vici`))), ErrorCodes.UNAVAILABLE);
  const fake = await fakeServer((_p, _send, sock) => sock.destroy());
  const c = await ViciClient.connect(fake.path);
  try {
    assert.is(await errorCodeAsync(c.request('version')), ErrorCodes.UNAVAILABLE);
    assert.ok(c.closed);
    assert.is((await c.whenClosed()).code, ErrorCodes.UNAVAILABLE);
    assert.is(await errorCodeAsync(c.request('version')), ErrorCodes.UNAVAILABLE);
  } finally {
    c.close();
    await fake.close();
  }
});

test('client: garbage from the server fails the request INVALID_ARGUMENT; no answer is TIMEOUT', async () => {
  const fake = await fakeServer((p, _send, sock) => {
    if (p.name === 'garbage') sock.write(Buffer.from([0, 0, 0, 2, 1, 9]));
  });
  const c = await ViciClient.connect(fake.path);
  try {
    assert.is(await errorCodeAsync(c.request('garbage')), ErrorCodes.INVALID_ARGUMENT);
  } finally {
    c.close();
  }
  const c2 = await ViciClient.connect(fake.path, { timeoutMs: 50 });
  try {
    assert.is(await errorCodeAsync(c2.request('never')), ErrorCodes.TIMEOUT);
  } finally {
    c2.close();
    await fake.close();
  }
});

test('client: a response when none was asked for is a protocol error that closes the connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vici-'));
  const path = join(dir, 's.vici');
  const server = createServer((sock) => {
    sock.on('error', () => {});
    sock.write(encodePacket({ type: PacketType.CMD_RESPONSE, message: {} }));
  });
  await new Promise<void>((r) => server.listen(path, r));
  const c = await ViciClient.connect(path);
  try {
    for (let i = 0; i < 200 && !c.closed; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(c.closed);
    assert.is(await errorCodeAsync(c.request('version')), ErrorCodes.INVALID_ARGUMENT);
  } finally {
    c.close();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
