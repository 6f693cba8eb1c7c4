import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unhealthyClusters, type GatewayView } from './health.ts';

const gw = (haStatus: string, conns: [string, string][]): GatewayView => ({ status: { haStatus, connections: conns.map(([cluster, status]) => ({ cluster, status })) } });
const rows: [string, GatewayView[], string[]][] = [
  ['all connected', [gw('active', [['c2', 'connected'], ['c3', 'connected']])], []],
  ['c2 cable down', [gw('active', [['c2', 'error'], ['c3', 'connected']])], ['c2']],
  ['c2 connecting', [gw('active', [['c2', 'connecting'], ['c3', 'connected']])], ['c2']],
  ['c3 has no cable at all', [gw('active', [['c2', 'connected']])], ['c3']],
  ['no gateway: unknown, all healthy', [], []],
  ['only a passive gateway: unknown, all healthy', [gw('passive', [])], []],
  ['two active, one stale: connected on either counts', [gw('active', [['c2', 'error'], ['c3', 'connected']]), gw('active', [['c2', 'connected']])], []],
];
for (const [what, gws, expected] of rows) {
  test(`health: ${what}`, () => {
    assert.equal([...unhealthyClusters(gws, ['c1', 'c2', 'c3'], 'c1')].sort(), expected);
  });
}
test('health: the local cluster is never unhealthy', () => {
  assert.equal([...unhealthyClusters([gw('active', [])], ['c1'], 'c1')], []);
});
test.run();
