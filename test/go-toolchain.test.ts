// e2e of scripts/go-toolchain.sh, the step of ./setup that provides Go: with no Go on PATH it
// fetches the pinned golang.org/toolchain module from the Go module proxy into the cache and
// that Go builds a program; a cached one is reused; a recent Go on PATH is kept; an older one
// (a real go1.21 toolchain, fetched the same way) is passed over; bad pins are refused with
// a clear error and leave nothing in the cache. Needs the network to the Go module proxy.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run, type Run } from './lib/cli.ts';
import { projectRoot } from '../sandbox/index.ts';

const pins = (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { isthmus: Record<string, string> }).isthmus;
const VERSION = pins['go'] ?? '';
const SHA = pins['go-sha256'] ?? '';
/** A real Go older than the builds need (Debian 12 ships 1.19; the toolchain module starts at 1.21). */
const OLD = { version: 'go1.21.13', sha: 'f3568bbc73073440d4e7e2093e37ccc84d1d852454c7bf5e044e809179ea7ab7' };
/** A PATH without the machine's Go. */
const BARE_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

const dir = mkdtempSync('/tmp/isthmus-go-');
const script = join(projectRoot(), 'scripts', 'go-toolchain.sh');
const toolchain = (args: readonly string[], path: string, env: Record<string, string> = {}): Promise<Run> =>
  run('bash', [script, ...args], { env: { PATH: path, ...env }, timeoutMs: 600_000 });

test.after(() => {
  execFileSync('rm', ['-rf', dir]);
});

test('no Go on PATH: fetches the pinned toolchain from the module proxy, and it builds a program', async () => {
  const none = await run('bash', ['-c', 'command -v go'], { env: { PATH: BARE_PATH } });
  assert.is.not(none.code, 0, `go is on ${BARE_PATH}: ${none.stdout}`);
  const cache = join(dir, 'cache');
  const r = await toolchain([VERSION, SHA, cache], BARE_PATH);
  assert.is(r.code, 0, r.stderr);
  const bin = r.stdout.trim();
  assert.is(bin, join(cache, `go-${VERSION.slice(2)}`, 'bin'));
  assert.match(r.stderr, `fetching golang.org/toolchain@v0.0.1-${VERSION}.linux-amd64`);
  const v = await run(join(bin, 'go'), ['version'], { env: { PATH: BARE_PATH, GOTOOLCHAIN: 'local' } });
  assert.match(v.stdout, `go version ${VERSION} linux/amd64`);

  const src = join(dir, 'hello');
  execFileSync('mkdir', ['-p', src]);
  writeFileSync(join(src, 'go.mod'), 'module example.com/hello\n\ngo 1.21\n');
  writeFileSync(join(src, 'main.go'), 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from the fetched go") }\n');
  const goEnv = { PATH: `${bin}:${BARE_PATH}`, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOFLAGS: '' };
  const b = await run(join(bin, 'go'), ['build', '-o', join(dir, 'hello-bin'), '.'], { env: goEnv, cwd: src, timeoutMs: 300_000 });
  assert.is(b.code, 0, b.stderr);
  assert.is(execFileSync(join(dir, 'hello-bin'), { encoding: 'utf8' }), 'hello from the fetched go\n');
});

test('a second run reuses the cached toolchain', async () => {
  const r = await toolchain([VERSION, SHA, join(dir, 'cache')], BARE_PATH);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, 'cached in');
  assert.not.match(r.stderr, 'fetching');
});

test('a recent enough Go on PATH is kept, and nothing is fetched', async () => {
  const machineGo = join(dir, 'cache', `go-${VERSION.slice(2)}`, 'bin');
  const cache = join(dir, 'cache-kept');
  const r = await toolchain([VERSION, SHA, cache], `${machineGo}:${BARE_PATH}`);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), machineGo);
  assert.match(r.stderr, 'new enough');
  assert.equal(readdirSync(dir).includes('cache-kept') ? readdirSync(cache) : [], []);
});

test('a Go older than the builds need is passed over for the pinned one', async () => {
  const oldCache = join(dir, 'cache-old');
  const fetched = await toolchain([OLD.version, OLD.sha, oldCache], BARE_PATH, { ISTHMUS_FORCE_GO: '1' });
  assert.is(fetched.code, 0, fetched.stderr);
  const oldBin = fetched.stdout.trim();
  const r = await toolchain([VERSION, SHA, join(dir, 'cache')], `${oldBin}:${BARE_PATH}`);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, `the machine's Go is ${OLD.version}`);
  assert.is(r.stdout.trim(), join(dir, 'cache', `go-${VERSION.slice(2)}`, 'bin'));
});

test('bad pins: a clear error, and nothing left in the cache', async () => {
  const cache = join(dir, 'cache-bad');
  const cases: [string[], number, string][] = [
    [['1.26', SHA, cache], 2, 'is not a Go release like go1.26.11'],
    [[VERSION, 'abc', cache], 2, 'is not a SHA-256'],
    [['go1.99.0', SHA, cache], 1, 'the Go module proxy answered HTTP'],
    [[VERSION, '0'.repeat(64), cache], 1, `not the pinned ${'0'.repeat(64)}: nothing was installed`],
  ];
  for (const [args, code, message] of cases) {
    const r = await toolchain(args, BARE_PATH);
    assert.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.is(r.stdout, '');
    assert.equal(readdirSync(dir).includes('cache-bad') ? readdirSync(cache) : [], [], `${args.join(' ')} left files`);
  }
  const missing = await run('bash', [script, VERSION], { env: { PATH: BARE_PATH } });
  assert.is(missing.code, 1);
  assert.match(missing.stderr, 'usage: go-toolchain.sh VERSION SHA256 CACHE_DIR');
});

test.run();
