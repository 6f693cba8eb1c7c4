import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CommandRunner, RunResult } from '../core/index.ts';
import { pathMtu } from './path-mtu.ts';

/** `ip route get` and `ip addr show dev` answered from a table of devices; the route's device is `via`. */
function host(via: string | undefined, routeMtu?: number): CommandRunner {
  const links: Record<string, { mtu: number; addr_info: { local: string }[] }> = {
    'isthmus-wg': { mtu: 1440, addr_info: [] },
    eth0: { mtu: 1500, addr_info: [{ local: '172.30.1.11' }] },
    wan0: { mtu: 1500, addr_info: [{ local: '172.29.0.11' }] },
  };
  return {
    run: async (_cmd, args): Promise<RunResult> => {
      if (args[2] === 'get') {
        if (via === undefined) return { code: 2, stdout: '', stderr: 'RTNETLINK answers: Network is unreachable' };
        return { code: 0, stdout: JSON.stringify([{ dst: args[3], dev: via, ...(routeMtu === undefined ? {} : { metrics: [{ mtu: routeMtu }] }) }]), stderr: '' };
      }
      const link = links[args[4] ?? ''];
      return link === undefined ? { code: 1, stdout: '', stderr: 'Device does not exist' } : { code: 0, stdout: JSON.stringify([link]), stderr: '' };
    },
  };
}
const wg = { remoteCidr: '10.3.0.0/16', underlayIp: '172.29.0.11', driver: 'wireguard', routeDevice: 'isthmus-wg' };
const xfrm = { remoteCidr: '10.3.0.0/16', underlayIp: '172.29.0.11', driver: 'ipsec', routeDevice: undefined };

test('through the cable device: its MTU, or the route\'s own', async () => {
  assert.is(await pathMtu(host('isthmus-wg'), wg), 1440);
  assert.is(await pathMtu(host('isthmus-wg', 1400), wg), 1400);
});

test('the cable\'s route not there yet (the default route by another device): no measurement, not its 1500', async () => {
  assert.is(await pathMtu(host('eth0'), wg), undefined);
  assert.is(await pathMtu(host('wan0'), wg), undefined, 'not even by the underlay: a device-routed cable never leaves by it');
  assert.is(await pathMtu(host(undefined), wg), undefined, 'no route at all');
});

test('kernel XFRM (no route device): by the underlay device, less the driver\'s overhead; any other device is no measurement', async () => {
  assert.is(await pathMtu(host('wan0'), xfrm), 1420);
  assert.is(await pathMtu(host('eth0'), xfrm), undefined);
});

test('a remote CIDR that is not one, or a device that vanished between the two commands: undefined', async () => {
  assert.is(await pathMtu(host('isthmus-wg'), { ...wg, remoteCidr: 'not-a-cidr' }), undefined);
  assert.is(await pathMtu(host('gone0'), { ...wg, routeDevice: 'gone0' }), undefined);
});

test.run();
