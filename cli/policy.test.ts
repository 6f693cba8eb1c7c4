import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

/** The modules a fresh Node loads for `import(file)` (resolve hooks see every one). */
function modulesLoadedBy(file: string): string[] {
  const code = `
    import { registerHooks } from 'node:module';
    const seen = [];
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.push(r.url); return r; } });
    await import(${JSON.stringify(new URL(file, import.meta.url).href)});
    process.stdout.write(JSON.stringify(seen));`;
  return JSON.parse(execFileSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', code], { encoding: 'utf8' })) as string[];
}

test('`isthmus policy agent` never loads @kubernetes/client-node (it runs on every node); the controller\'s file does', () => {
  for (const file of ['./policy.ts', './policy-agent.ts']) {
    const loaded = modulesLoadedBy(file);
    assert.ok(loaded.length > 0, `${file}: the hook saw its imports`);
    assert.equal(loaded.filter((u) => u.includes('@kubernetes/client-node')), [], file);
  }
  assert.ok(modulesLoadedBy('./policy-verbs.ts').some((u) => u.includes('@kubernetes/client-node')), 'the check would see it');
});

test.run();
