// Writes the Helm chart deploy/helm/isthmus from the plain manifests of deploy/ (cli/helm-chart.ts):
// run it after changing deploy/; cli/helm-chart.test.ts fails while the chart on disk differs.
// usage: node scripts/helm-chart.ts
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CHART_DIR, chartFiles } from '../cli/helm-chart.ts';
import { projectRoot } from '../sandbox/versions.ts';

const root = projectRoot();
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const files = await chartFiles(version);
rmSync(join(root, CHART_DIR), { recursive: true, force: true });
for (const [path, text] of files) {
  mkdirSync(dirname(join(root, CHART_DIR, path)), { recursive: true });
  writeFileSync(join(root, CHART_DIR, path), text);
}
console.log(`wrote ${files.size} files into ${CHART_DIR}`);
