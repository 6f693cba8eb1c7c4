import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { caseRows, junit } from './verify.ts';

test('JUnit report: counts, times, failures escaped', () => {
  const xml = junit('isthmus verify c1 → c2', [{ name: 'pod → pod', ms: 1200 }, { name: 'clusterset <name>', ms: 300, failure: 'no answer from "x" & y' }]);
  assert.match(xml, /<testsuite name="isthmus verify c1 → c2" tests="2" failures="1" time="1.500">/);
  assert.match(xml, /<testcase classname="isthmus verify c1 → c2" name="pod → pod" time="1.200"><\/testcase>/);
  assert.match(xml, /name="clusterset &lt;name&gt;" time="0.300"><failure message="no answer from &quot;x&quot; &amp; y"\/><\/testcase>/);
});

test('JUnit report: a case\'s output (the measured outage) as its system-out', () => {
  const xml = junit('s', [{ name: 'gateway failover in c2', ms: 5000, output: 'outage: pod 10.2.0.5 2.4 s' }]);
  assert.match(xml, /name="gateway failover in c2" time="5.000"><system-out>outage: pod 10\.2\.0\.5 2\.4 s<\/system-out><\/testcase>/);
});

test('cases as rows for -o json|yaml: result, seconds, the failure as detail', () => {
  assert.equal(caseRows([{ name: 'a', ms: 1500 }, { name: 'b', ms: 20, failure: 'no answer' }]).rows, [['a', 'passed', '1.500', ''], ['b', 'failed', '0.020', 'no answer']]);
});

test.run();
