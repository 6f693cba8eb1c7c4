import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { POLICY_AGENT_CRD_FILE, POLICY_CRD_FILE, policyAgentCrdText, policyCrdText } from './crd.ts';

test('deploy/crds holds exactly what crd.ts builds (run node policy/write-crd.ts after a change)', () => {
  assert.is(readFileSync(join(import.meta.dirname, '..', 'deploy', 'crds', POLICY_CRD_FILE), 'utf8'), policyCrdText());
  assert.is(readFileSync(join(import.meta.dirname, '..', 'deploy', 'crds', POLICY_AGENT_CRD_FILE), 'utf8'), policyAgentCrdText());
});

test.run();
