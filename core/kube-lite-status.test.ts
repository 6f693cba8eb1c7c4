import { createServer } from 'node:http';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeRest, NodeStatusWriter } from './kube-lite.ts';

/** A loopback HTTP server playing one PolicyAgent resource; `failPut` makes the next status PUT answer 500. */
async function fakeApiserver(): Promise<{ kube: KubeRest; calls: string[]; stored: () => Record<string, unknown> | undefined; failPut: () => void; close: () => Promise<void> }> {
  const calls: string[] = [];
  let stored: Record<string, unknown> | undefined;
  let fail = false;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += String(c); });
    req.on('end', () => {
      calls.push(`${req.method ?? ''} ${req.url ?? ''}`);
      const send = (status: number, o: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(o)); };
      const item = '/apis/isthmus.dev/v1alpha1/namespaces/ns/policyagents/n1';
      if (req.method === 'GET' && req.url === item) return stored === undefined ? send(404, { message: 'not found' }) : send(200, stored);
      if (req.method === 'POST' && req.url === '/apis/isthmus.dev/v1alpha1/namespaces/ns/policyagents') {
        stored = { ...(JSON.parse(body) as Record<string, unknown>), metadata: { name: 'n1', namespace: 'ns', resourceVersion: '1' } };
        return send(201, stored);
      }
      if (req.method === 'PUT' && req.url === `${item}/status`) {
        if (fail) { fail = false; return send(500, { message: 'etcd busy' }); }
        stored = JSON.parse(body) as Record<string, unknown>;
        return send(200, stored);
      }
      return send(400, { message: 'unexpected' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    kube: new KubeRest({ server: `http://127.0.0.1:${port}`, insecure: false, source: 'test' }), calls, stored: () => stored,
    failPut: () => { fail = true; }, close: () => new Promise((r) => server.close(() => r())),
  };
}

test('NodeStatusWriter: creates the node\'s object, replaces its status, writes nothing when unchanged, retries a failed write', async () => {
  const api = await fakeApiserver();
  try {
    const w = new NodeStatusWriter(api.kube, { plural: 'policyagents', kind: 'PolicyAgent', namespace: 'ns', node: 'n1' });
    await w.write({ digest: 'a' });
    assert.equal(api.calls, ['GET /apis/isthmus.dev/v1alpha1/namespaces/ns/policyagents/n1', 'POST /apis/isthmus.dev/v1alpha1/namespaces/ns/policyagents',
      'PUT /apis/isthmus.dev/v1alpha1/namespaces/ns/policyagents/n1/status']);
    assert.equal(api.stored()?.['spec'], { nodeName: 'n1' });
    assert.equal(api.stored()?.['kind'], 'PolicyAgent');
    assert.equal(api.stored()?.['status'], { digest: 'a' });
    await w.write({ digest: 'a' });
    assert.is(api.calls.length, 3, 'the same status again: no request');
    api.failPut();
    try {
      await w.write({ digest: 'b' });
      assert.unreachable('a failed PUT throws');
    } catch (err) {
      assert.match(String(err), /500/);
    }
    await w.write({ digest: 'b' });
    assert.equal(api.stored()?.['status'], { digest: 'b' }, 'the failed status is written by the next call');
    assert.is(api.calls.filter((c) => c.startsWith('POST')).length, 1, 'created once');
  } finally {
    await api.close();
  }
});

test.run();
