import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sandbox/index.ts';

/**
 * The isthmus CLI as it ships: tsc's JavaScript output (package.json's `build`), for
 * benches that measure memory. Running the .ts sources through Node's type stripping
 * costs 20–30 MB of RSS more (the stripper and the sources it read stay loaded), which a
 * deployment never pays. The output goes to a folder of the project root (so broker.proto
 * and node_modules are found as from dist/), never to dist/ itself, which bin/isthmus
 * prefers; remove() deletes it.
 */
export function buildCli(): { cli: string; remove: () => void } {
  const root = projectRoot();
  const out = join(root, `.bench-build-${process.pid}`);
  execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', root, '--outDir', out], { stdio: 'inherit' });
  return { cli: join(out, 'cli', 'main.js'), remove: () => rmSync(out, { recursive: true, force: true }) };
}
