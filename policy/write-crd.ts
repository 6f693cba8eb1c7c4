import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { POLICY_CRD_FILE, policyCrdText } from './crd.ts';

/** Writes the ClusterSetNetworkPolicy CRD to deploy/crds/ (run from the checkout: `node policy/write-crd.ts`). */
writeFileSync(join(import.meta.dirname, '..', 'deploy', 'crds', POLICY_CRD_FILE), policyCrdText());
