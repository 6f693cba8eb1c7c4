import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Counter, Registry } from './prom.ts';
import { ErrorCodes, IsthmusError } from './errors.ts';
import { MetricsServer } from './metrics-server.ts';

function registry(): Registry {
  const r = new Registry();
  new Counter({ name: 'isthmus_test_things_total', help: 'things', registers: [r] }).inc(3);
  return r;
}

test('serves /metrics, /healthz, /readyz (ready, not ready, failing) and 404 elsewhere', async () => {
  let ready: boolean | Error = false;
  const server = new MetricsServer(registry(), '127.0.0.1:0', async () => {
    if (ready instanceof Error) throw ready;
    return ready;
  });
  await server.start();
  try {
    const base = `http://127.0.0.1:${server.port}`;
    assert.ok(server.port > 0);
    const metrics = await fetch(`${base}/metrics`);
    assert.is(metrics.status, 200);
    assert.match(metrics.headers.get('content-type') ?? '', 'text/plain');
    assert.match(await metrics.text(), /^isthmus_test_things_total 3$/m);
    assert.is((await fetch(`${base}/healthz`)).status, 200);
    assert.is((await fetch(`${base}/readyz`)).status, 503);
    ready = true;
    assert.is((await fetch(`${base}/readyz`)).status, 200);
    ready = new Error('etcd does not answer');
    const failing = await fetch(`${base}/readyz`);
    assert.is(failing.status, 503);
    assert.match(await failing.text(), 'etcd does not answer');
    assert.is((await fetch(`${base}/other`)).status, 404);
  } finally {
    await server.stop();
  }
});

test('a bad address is INVALID_CONFIG; a taken port is PORT_IN_USE', async () => {
  try {
    await new MetricsServer(registry(), 'nowhere').start();
    assert.unreachable('started without a port');
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, ErrorCodes.INVALID_CONFIG);
  }
  const first = new MetricsServer(registry(), '127.0.0.1:0');
  await first.start();
  try {
    await new MetricsServer(registry(), `127.0.0.1:${first.port}`).start();
    assert.unreachable('two servers on one port');
  } catch (err) {
    assert.instance(err, IsthmusError);
    assert.is((err as IsthmusError).code, ErrorCodes.PORT_IN_USE);
  } finally {
    await first.stop();
  }
});

test.run();
