import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import * as dns from 'dns-packet';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes } from '../../core/index.ts';
import { errorCode, errorCodeAsync } from '../../core/testing.ts';
import { DnsServer, parseListen } from './server.ts';
import { ZoneIndex } from './zone.ts';

// Loopback only: a real server on 127.0.0.1, real UDP and TCP clients.
const zone = new ZoneIndex();
zone.set('demo/echo', { namespace: 'demo', name: 'echo', type: 'ClusterSetIP', ips: ['10.101.0.50'], ports: [{ name: 'http', protocol: 'TCP', port: 80 }], slices: [] });
const query = (id: number, name: string): Buffer => dns.encode({ type: 'query', id, questions: [{ name, type: 'A', class: 'IN' }] });

test('UDP and TCP (two queries on one connection, split across writes) answer from the index', async () => {
  const server = new DnsServer({ listen: '127.0.0.1:0', zone });
  await server.start();
  try {
    const udp = createSocket('udp4');
    const reply = await new Promise<Buffer>((resolve) => {
      udp.once('message', (m) => resolve(m));
      udp.send(query(1, 'echo.demo.svc.clusterset.local'), server.port, '127.0.0.1');
    });
    udp.close();
    assert.equal(dns.decode(reply).answers?.map((a) => ('data' in a ? a.data : '')), ['10.101.0.50']);

    const sock = connect(server.port, '127.0.0.1');
    const got: Buffer[] = [];
    const done = new Promise<void>((resolve) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (got.length === 2) resolve();
      });
    });
    const frames = Buffer.concat([dns.streamEncode({ type: 'query', id: 2, questions: [{ name: 'echo.demo.svc.clusterset.local', type: 'A' }] }), dns.streamEncode({ type: 'query', id: 3, questions: [{ name: 'nope.demo.svc.clusterset.local', type: 'A' }] })]);
    sock.write(frames.subarray(0, 7));
    setTimeout(() => sock.write(frames.subarray(7)), 20);
    await done;
    sock.destroy();
    assert.equal(got.map((g) => dns.decode(g).id), [2, 3]);
    assert.is((dns.decode(got[1] as Buffer) as { rcode?: string }).rcode, 'NXDOMAIN');
  } finally {
    await server.stop();
  }
});

test('a taken port: PORT_IN_USE; a bad address: INVALID_CONFIG', async () => {
  const a = new DnsServer({ listen: '127.0.0.1:0', zone });
  await a.start();
  try {
    const b = new DnsServer({ listen: `127.0.0.1:${a.port}`, zone });
    assert.is(await errorCodeAsync(b.start()), ErrorCodes.PORT_IN_USE);
  } finally {
    await a.stop();
  }
  assert.is(errorCode(() => parseListen('localhost')), ErrorCodes.INVALID_CONFIG);
  assert.is(errorCode(() => parseListen('1.2.3.4:70000')), ErrorCodes.INVALID_CONFIG);
  assert.equal(parseListen('[::1]:53'), { host: '::1', port: 53 });
});

test.run();
