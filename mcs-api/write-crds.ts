import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdFileText, mcsCrds } from './crds.ts';

/** Writes the MCS CRDs to deploy/crds/ (run from the checkout: `node mcs-api/write-crds.ts`). */
const dir = join(import.meta.dirname, '..', 'deploy', 'crds');
for (const [file, crd] of Object.entries(mcsCrds())) writeFileSync(join(dir, file), crdFileText(crd));
