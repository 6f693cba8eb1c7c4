import { createSocket } from 'node:dgram';
import { Agent, request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { formatClient, parsePorts, runEchoCommand, startEcho, type EchoServer } from './echo.ts';

const HOST = '127.0.0.1';
const identity = { pod: 'echo-7d4f9-abcde', namespace: 'demo', cluster: 'c2', podIp: '10.2.1.7' };

interface HttpAnswer {
  status: number;
  contentType: string | undefined;
  json: Record<string, unknown>;
  localPort: number;
}

function http(port: number, path = '/', opts: { method?: string; body?: string; agent?: Agent } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path, method: opts.method ?? 'GET', agent: opts.agent ?? false, timeout: 3000 }, (res) => {
      const localPort = res.socket.localPort ?? -1;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], json: JSON.parse(text) as Record<string, unknown>, localPort });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('http timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function udp(port: number, payload = 'hello'): Promise<{ text: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => { s.close(); reject(new Error('udp timeout')); }, 3000);
    s.on('error', (err) => { clearTimeout(timer); s.close(); reject(err); });
    s.on('message', (msg) => {
      clearTimeout(timer);
      const localPort = s.address().port;
      s.close();
      resolve({ text: msg.toString('utf8'), localPort });
    });
    s.bind(0, HOST, () => s.send(payload, port, HOST));
  });
}

function rawTcp(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const c = connect(port, HOST, () => c.write(data));
    c.setEncoding('utf8');
    c.setTimeout(3000, () => c.destroy(new Error('tcp timeout')));
    c.on('data', (d: string) => { text += d; });
    c.on('end', () => resolve(text));
    c.on('close', () => resolve(text));
    c.on('error', reject);
  });
}

/** Resolves true when both TCP and UDP can bind the port on 127.0.0.1 right now. */
async function portFree(port: number): Promise<boolean> {
  const tcp = await new Promise<Server | undefined>((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen({ port, host: HOST, exclusive: true }, () => resolve(s));
  });
  if (tcp === undefined) return false;
  await new Promise<void>((r) => tcp.close(() => r()));
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind({ port, address: HOST, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port that is free on TCP and UDP: one echo picked, then released. */
async function freePort(): Promise<number> {
  const e = await startEcho({ ports: [0], host: HOST, identity });
  const [port] = e.ports;
  await e.close();
  assert.ok(port !== undefined && port > 0);
  return port;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<IsthmusError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, code, (err as Error).message);
    return err as IsthmusError;
  }
  assert.unreachable(`expected a rejection with ${code}`);
  throw new Error('unreachable');
}

async function withEcho(ports: number[], fn: (e: EchoServer) => Promise<void>): Promise<void> {
  const e = await startEcho({ ports, host: HOST, identity });
  try {
    await fn(e);
  } finally {
    await e.close();
  }
}

test('HTTP over TCP answers with the identity, the client address and the path', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const a = await http(port, '/some/path?x=1');
    assert.is(a.status, 200);
    assert.is(a.contentType, 'application/json');
    assert.equal(a.json, { ...identity, client: `127.0.0.1:${String(a.localPort)}`, path: '/some/path?x=1' });
  });
});

test('GET /bytes/N answers N bytes; a larger N than the limit is an ordinary answer', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const body = await new Promise<Buffer>((resolve, reject) => {
      request({ host: HOST, port, path: '/bytes/3000000', agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(Buffer.concat(parts)));
      }).on('error', reject).end();
    });
    assert.is(body.length, 3_000_000);
    assert.is((await http(port, '/bytes/999999999999')).json['path'], '/bytes/999999999999');
  });
});

test('HTTP keep-alive: several requests on one connection, any method, with a body', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await http(port, '/one', { agent });
      const second = await http(port, '/two', { agent, method: 'POST', body: 'x'.repeat(100_000) });
      const third = await http(port, '/three', { agent, method: 'DELETE' });
      assert.equal([first.status, second.status, third.status], [200, 200, 200]);
      assert.equal([first.json['path'], second.json['path'], third.json['path']], ['/one', '/two', '/three']);
      assert.equal([first.json['received'], second.json['received']], [undefined, 100_000], 'the body length is reported');
      // One connection: the same client port every time.
      assert.is(second.json['client'], first.json['client']);
      assert.is(third.json['client'], first.json['client']);
    } finally {
      agent.destroy();
    }
  });
});

test('two pipelined requests on a raw connection get two answers', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const text = await rawTcp(port, `GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.is(text.match(/HTTP\/1\.1 200 OK/g)?.length, 2);
    assert.match(text, /"path":"\/a"/);
    assert.match(text, /"path":"\/b"/);
  });
});

test('non-HTTP bytes on TCP get 400 and the server keeps answering', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const text = await rawTcp(port, 'hello there\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400/);
    assert.is((await http(port)).status, 200);
  });
});

test('UDP: a datagram gets one line of JSON naming the pod and the sender', async () => {
  await withEcho([0], async (e) => {
    const port = e.ports[0] ?? 0;
    const a = await udp(port, 'ping');
    assert.ok(a.text.endsWith('\n'));
    assert.is(a.text.indexOf('\n'), a.text.length - 1, 'exactly one line');
    assert.equal(JSON.parse(a.text), { ...identity, client: `127.0.0.1:${String(a.localPort)}` });
    // An empty datagram is answered too.
    const b = await udp(port, '');
    assert.is((JSON.parse(b.text) as Record<string, unknown>)['client'], `127.0.0.1:${String(b.localPort)}`);
  });
});

test('two ports at once, each on TCP and UDP with the same number', async () => {
  await withEcho([0, 0], async (e) => {
    assert.is(e.ports.length, 2);
    const [p1, p2] = e.ports;
    assert.ok(p1 !== undefined && p2 !== undefined && p1 !== p2 && p1 > 0 && p2 > 0);
    for (const p of [p1, p2]) {
      assert.is((await http(p, `/on/${String(p)}`)).json['path'], `/on/${String(p)}`);
      assert.is((JSON.parse((await udp(p)).text) as Record<string, unknown>)['pod'], identity.pod);
    }
  });
  // Fixed port numbers are kept as given.
  const fixed = await freePort();
  await withEcho([fixed], async (e) => {
    assert.equal(e.ports, [fixed]);
    assert.is((await http(fixed)).status, 200);
  });
});

test('close frees every port (TCP and UDP) and is idempotent', async () => {
  const e = await startEcho({ ports: [0, 0], host: HOST, identity });
  const agent = new Agent({ keepAlive: true });
  const ports = [...e.ports];
  for (const p of ports) assert.is((await http(p, '/', { agent })).status, 200); // leaves idle keep-alive connections
  await e.close();
  await e.close();
  for (const p of ports) assert.ok(await portFree(p), `port ${String(p)} is free again`);
  await rejectsWithErrno(http(ports[0] ?? 0), 'ECONNREFUSED');
  agent.destroy();
});

async function rejectsWithErrno(p: Promise<unknown>, errno: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, errno);
    return;
  }
  assert.unreachable(`expected ${errno}`);
}

test('a port taken on TCP or on UDP gives PORT_IN_USE and releases the ports already bound', async () => {
  const good = await freePort();
  const tcpTaken = createServer();
  await new Promise<void>((r) => tcpTaken.listen(0, HOST, () => r()));
  const busyTcp = (tcpTaken.address() as { port: number }).port;
  try {
    const err = await rejectsWith(startEcho({ ports: [good, busyTcp], host: HOST, identity }), ErrorCodes.PORT_IN_USE);
    assert.match(err.message, String(busyTcp));
    assert.ok(await portFree(good), 'the port bound before the failure is released');
  } finally {
    await new Promise<void>((r) => tcpTaken.close(() => r()));
  }
  const udpTaken = createSocket('udp4');
  await new Promise<void>((r) => udpTaken.bind(0, HOST, () => r()));
  const busyUdp = udpTaken.address().port;
  try {
    const err = await rejectsWith(startEcho({ ports: [busyUdp], host: HOST, identity }), ErrorCodes.PORT_IN_USE);
    assert.match(err.message, /UDP/);
    // Its TCP side was released again.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => { probe.once('error', reject); probe.listen(busyUdp, HOST, () => resolve()); });
    await new Promise<void>((r) => probe.close(() => r()));
  } finally {
    await new Promise<void>((r) => udpTaken.close(() => r()));
  }
});

test('bad options give INVALID_ARGUMENT', async () => {
  await rejectsWith(startEcho({ ports: [], host: HOST, identity }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(startEcho({ ports: [70000], host: HOST, identity }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(startEcho({ ports: [-1], host: HOST, identity }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(startEcho({ ports: [8.5], host: HOST, identity }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(startEcho({ ports: [18080, 18080], host: HOST, identity }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(startEcho({ ports: [0], host: 'localhost', identity }), ErrorCodes.INVALID_ARGUMENT);
  // 192.0.2.1 (TEST-NET-1) is not an address of this machine: nothing is sent, bind fails.
  await rejectsWith(startEcho({ ports: [0], host: '192.0.2.1', identity }), ErrorCodes.INVALID_ARGUMENT);
});

test('--ports parsing', () => {
  assert.equal(parsePorts('8080'), [8080]);
  assert.equal(parsePorts('8080,9090'), [8080, 9090]);
  assert.equal(parsePorts(' 53 , 65535 '), [53, 65535]);
});

test('a bad --ports value (or argument) gives INVALID_ARGUMENT', async () => {
  for (const bad of ['80x', '70000', '0', '', '8080,,9090', '8080,8080', '-1', '1e3', '8080;9090', '080800']) {
    await rejectsWith(runEchoCommand(['--ports', bad], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
    await rejectsWith(runEchoCommand([`--ports=${bad}`], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
  }
  await rejectsWith(runEchoCommand(['--ports'], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(runEchoCommand(['--ports', '--host', HOST], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(runEchoCommand(['--port', '8080'], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
  await rejectsWith(runEchoCommand(['8080'], { ISTHMUS_LOG_LEVEL: 'silent' }), ErrorCodes.INVALID_ARGUMENT);
  // No handler is left behind by a failed start.
  assert.is(process.listenerCount('SIGTERM'), 0);
});

test('the command serves the identity from the environment until SIGTERM, then returns 0', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const env = { POD_NAME: 'echo-0', POD_NAMESPACE: 'ns1', ISTHMUS_CLUSTER: 'c1', POD_IP: '10.1.0.9', ISTHMUS_LOG_LEVEL: 'silent' };
  const run = runEchoCommand(['--host', HOST, `--ports=${String(p1)},${String(p2)}`], env);
  let settled: number | undefined;
  void run.then((code) => { settled = code; });
  let answer: HttpAnswer | undefined;
  for (let i = 0; i < 100 && answer === undefined; i++) {
    answer = await http(p2, '/ready').catch(async () => { await new Promise((r) => setTimeout(r, 20)); return undefined; });
  }
  assert.ok(answer, 'the command answers HTTP');
  assert.equal(answer.json, { pod: 'echo-0', namespace: 'ns1', cluster: 'c1', podIp: '10.1.0.9', client: `127.0.0.1:${String(answer.localPort)}`, path: '/ready' });
  const line = JSON.parse((await udp(p1)).text) as Record<string, unknown>;
  assert.is(line['cluster'], 'c1');
  assert.is(settled, undefined, 'still running');
  process.kill(process.pid, 'SIGTERM');
  assert.is(await run, 0);
  assert.ok(await portFree(p1));
  assert.ok(await portFree(p2));
  assert.is(process.listenerCount('SIGTERM'), 0);
});

test('client addresses: IPv4, IPv4-mapped IPv6 and IPv6', () => {
  assert.is(formatClient('10.1.0.5', 40000), '10.1.0.5:40000');
  assert.is(formatClient('::ffff:10.1.0.5', 40000), '10.1.0.5:40000');
  assert.is(formatClient('fd00::5', 53), '[fd00::5]:53');
});

test.run();
