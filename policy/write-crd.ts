import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { POLICY_AGENT_CRD_FILE, POLICY_CRD_FILE, policyAgentCrdText, policyCrdText } from './crd.ts';

/** Writes the ClusterSetNetworkPolicy and PolicyAgent CRDs to deploy/crds/ (run from the checkout: `node policy/write-crd.ts`). */
const dir = join(import.meta.dirname, '..', 'deploy', 'crds');
writeFileSync(join(dir, POLICY_CRD_FILE), policyCrdText());
writeFileSync(join(dir, POLICY_AGENT_CRD_FILE), policyAgentCrdText());
