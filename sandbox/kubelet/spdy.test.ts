import { Duplex } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SpdyClient } from './spdy-client.ts';
import { FLAG_FIN, FrameType, HEADER_DICTIONARY, SpdyConnection, controlFrame, dataFrame, decodeHeaders, encodeHeaders, splitFrames, type SpdyStream } from './spdy.ts';

/** Two connected in-memory sockets. */
function pair(): [Duplex, Duplex] {
  const a = new Duplex({ read() {}, write(c: Buffer, _e, cb) { b.push(c); cb(); }, final(cb) { b.push(null); cb(); } });
  const b: Duplex = new Duplex({ read() {}, write(c: Buffer, _e, cb) { a.push(c); cb(); }, final(cb) { a.push(null); cb(); } });
  return [a, b];
}

test('dictionary: the spec words with lengths, then the tail', () => {
  assert.is(HEADER_DICTIONARY.readUInt32BE(0), 7);
  assert.is(HEADER_DICTIONARY.toString('latin1', 4, 11), 'options');
  assert.ok(HEADER_DICTIONARY.toString('latin1').endsWith('enq=0.'));
  assert.is(HEADER_DICTIONARY.length, 1423);
});

test('header blocks round-trip, names lowercased, values split on NUL', () => {
  const h = decodeHeaders(encodeHeaders(new Map([['StreamType', ['stdout']], ['x', ['a', 'b']]])));
  assert.equal([...h], [['streamtype', ['stdout']], ['x', ['a', 'b']]]);
  assert.throws(() => decodeHeaders(Buffer.from([0, 0, 0, 1, 0, 0, 0, 9])), /truncated/);
});

test('frames split at their boundaries; a partial frame stays in the rest', () => {
  const a = controlFrame(FrameType.PING, 0, Buffer.from([0, 0, 0, 1]));
  const b = dataFrame(3, FLAG_FIN, Buffer.from('hi'));
  const all = Buffer.concat([a, b]);
  const { frames, rest } = splitFrames(all.subarray(0, all.length - 1));
  assert.is(frames.length, 1);
  assert.is(rest.length, b.length - 1);
  const second = splitFrames(all).frames[1];
  assert.equal(second?.control === false ? [second.streamId, second.flags, second.data.toString()] : [], [3, FLAG_FIN, 'hi']);
  assert.throws(() => splitFrames(Buffer.from([0x80, 2, 0, 1, 0, 0, 0, 0])), /version 2/);
});

test('a client opens streams; the server replies, both sides exchange data and FIN', async () => {
  const [server, client] = pair();
  const conn = new SpdyConnection(server);
  const seen: SpdyStream[] = [];
  conn.on('stream', (s) => {
    seen.push(s);
    void conn.reply(s);
    if (s.header('streamtype') === 'stdin') {
      const chunks: Buffer[] = [];
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('end', () => {
        const out = seen.find((x) => x.header('streamtype') === 'stdout');
        out?.end(Buffer.concat(chunks).toString().toUpperCase());
      });
    }
  });
  const c = new SpdyClient(client);
  const stdout = await c.open({ streamtype: 'stdout' });
  const stdin = await c.open({ streamtype: 'stdin' });
  await c.send(stdin, Buffer.from('hello '), false);
  await c.send(stdin, Buffer.from('world'), true);
  assert.is((await c.readAll(stdout)).toString(), 'HELLO WORLD');
  assert.is(await c.ping(7), 7);
  conn.close();
  assert.ok(conn.closed);
});

test('data written before the reply waits for it: SYN_REPLY goes first on the wire', async () => {
  const [server, client] = pair();
  const conn = new SpdyConnection(server);
  conn.on('stream', (s) => {
    s.end('early'); // written before reply() is even called
    setTimeout(() => void conn.reply(s), 20);
  });
  const seen: string[] = [];
  client.on('data', (d: Buffer) => {
    for (const f of splitFrames(d).frames) seen.push(f.control ? `control:${f.type}` : `data:${f.data.toString()}`);
  });
  const c = new SpdyClient(client);
  const id = await c.open({ streamtype: 'stdout' });
  assert.is((await c.readAll(id)).toString(), 'early');
  assert.equal(seen.slice(0, 2), [`control:${FrameType.SYN_REPLY}`, 'data:early']);
  conn.close();
});

test('a malformed frame ends the connection', async () => {
  const [server, client] = pair();
  const conn = new SpdyConnection(server);
  const closed = new Promise<void>((r) => conn.once('close', () => r()));
  client.write(Buffer.from([0x80, 9, 0, 1, 0, 0, 0, 0]));
  await closed;
  assert.ok(conn.closed);
});

test.run();
