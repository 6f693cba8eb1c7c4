import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCodes, IsthmusError } from '../core/index.ts';
import { planSandbox } from './plan.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof IsthmusError ? err.code : 'other';
  }
  return undefined;
}

test('distinct CIDRs and ports per cluster by default', () => {
  const plan = planSandbox({ clusters: 3, overlapping: false, portBase: 16400 });
  assert.equal(plan.map((c) => c.name), ['c1', 'c2', 'c3']);
  assert.equal(plan.map((c) => c.podCidr), ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16']);
  assert.equal(plan.map((c) => c.serviceCidr), ['10.101.0.0/16', '10.102.0.0/16', '10.103.0.0/16']);
  assert.equal(plan[1]?.apiServiceIp, '10.102.0.1');
  assert.equal(plan.map((c) => c.nodeCidr), ['172.30.1.0/24', '172.30.2.0/24', '172.30.3.0/24']);
  assert.equal(plan.map((c) => [c.bridge, c.hostIp]), [['isb-c1', '172.30.1.1'], ['isb-c2', '172.30.2.1'], ['isb-c3', '172.30.3.1']]);
  const ports = plan.flatMap((c) => Object.values(c.ports));
  assert.is(new Set(ports).size, ports.length);
  assert.equal(plan[2]?.ports, { apiserver: 16420, etcdClient: 16421, etcdPeer: 16422, controllerManager: 16423 });
});

test('overlapping gives every cluster the same CIDRs but its own ports', () => {
  const plan = planSandbox({ clusters: 2, overlapping: true, portBase: 20000 });
  assert.equal(plan.map((c) => c.podCidr), ['10.1.0.0/16', '10.1.0.0/16']);
  assert.equal(plan.map((c) => c.serviceCidr), ['10.101.0.0/16', '10.101.0.0/16']);
  assert.is.not(plan[0]?.ports.apiserver, plan[1]?.ports.apiserver);
  assert.is.not(plan[0]?.nodeCidr, plan[1]?.nodeCidr);
});

test('refuses bad counts and port bases', () => {
  assert.is(code(() => planSandbox({ clusters: 0, overlapping: false, portBase: 16400 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(code(() => planSandbox({ clusters: 17, overlapping: false, portBase: 16400 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(code(() => planSandbox({ clusters: 1.5, overlapping: false, portBase: 16400 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(code(() => planSandbox({ clusters: 2, overlapping: false, portBase: 80 })), ErrorCodes.INVALID_ARGUMENT);
  assert.is(code(() => planSandbox({ clusters: 16, overlapping: false, portBase: 65500 })), ErrorCodes.INVALID_ARGUMENT);
});

test.run();
