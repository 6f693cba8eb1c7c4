import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Plan, PlanRule } from './compile.ts';
import { ipsetDeltaScript, nftDeltaScript, planDelta, planShape } from './delta.ts';

const rule: PlanRule = { dst: 'dst0', src: 'src1', protocol: 'tcp', ports: ['8080'], action: 'Allow', audit: 'audit0', comment: 'c1/ns/p web' };
const plan = (src: string[], extra: Partial<Plan> = {}): Plan => ({
  remoteCidrs: ['10.2.0.0/16'], sets: [{ name: 'dst0', ips: ['10.1.0.3'] }, { name: 'src1', ips: src }], audits: ['audit0'], rules: [rule], auditSeconds: 60, ...extra,
});

test('planDelta: only the sets whose elements differ, with what to add and delete', () => {
  assert.equal(planDelta(plan(['10.2.0.5', '10.2.0.6']), plan(['10.2.0.6', '10.2.0.7', '10.2.0.8'])), [{ name: 'src1', add: ['10.2.0.7', '10.2.0.8'], del: ['10.2.0.5'] }]);
  assert.equal(planDelta(plan(['10.2.0.5']), plan([])), [{ name: 'src1', add: [], del: ['10.2.0.5'] }], 'a set may become empty');
  assert.equal(planDelta(plan(['10.2.0.5']), plan(['10.2.0.5'])), [], 'equal plans: nothing');
});

test('planDelta: any change of shape → undefined (replace whole)', () => {
  const a = plan(['10.2.0.5']);
  for (const [what, b] of [
    ['a rule', plan(['10.2.0.5'], { rules: [{ ...rule, ports: ['9090'] }] })],
    ['rule order', plan(['10.2.0.5'], { rules: [rule, { ...rule, action: 'Deny' }] })],
    ['a set more', plan(['10.2.0.5'], { sets: [...a.sets, { name: 'src2', ips: ['10.2.0.9'] }] })],
    ['a set renamed', plan(['10.2.0.5'], { sets: [{ name: 'dst0', ips: ['10.1.0.3'] }, { name: 'src2', ips: ['10.2.0.5'] }] })],
    ['remote CIDRs', plan(['10.2.0.5'], { remoteCidrs: ['10.3.0.0/16'] })],
    ['audit sets', plan(['10.2.0.5'], { audits: ['audit0', 'audit1'] })],
    ['audit timeout', plan(['10.2.0.5'], { auditSeconds: 30 })],
  ] as const) {
    assert.is(planDelta(a, b), undefined, what);
    assert.is.not(planShape(a), planShape(b), what);
  }
});

test('nftDeltaScript: deletes and adds per set, then the digest replaced — one transaction', () => {
  assert.is(nftDeltaScript('isthmus-policy', [{ name: 'src1', add: ['10.2.0.7'], del: ['10.2.0.5', '10.2.0.6'] }, { name: 'dst0', add: ['10.1.0.4'], del: [] }], 'abc'), [
    'delete element ip isthmus-policy src1 { 10.2.0.5, 10.2.0.6 }',
    'add element ip isthmus-policy src1 { 10.2.0.7 }',
    'add element ip isthmus-policy dst0 { 10.1.0.4 }',
    'flush set ip isthmus-policy digest',
    'add element ip isthmus-policy digest { 0.0.0.0 comment "isthmus policy abc" }',
    '',
  ].join('\n'));
});

test('ipsetDeltaScript: del then add lines on the prefixed sets; nothing to do → empty', () => {
  assert.is(ipsetDeltaScript('isthmus-p-', [{ name: 'src1', add: ['10.2.0.7'], del: ['10.2.0.5'] }]), 'del isthmus-p-src1 10.2.0.5\nadd isthmus-p-src1 10.2.0.7\n');
  assert.is(ipsetDeltaScript('isthmus-p-', []), '');
});

test.run();
