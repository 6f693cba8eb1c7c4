// e2e, needs root: scripts/build-image.sh builds the one OCI image of every component without a
// container daemon; tools that read OCI images check it: skopeo reads its manifest and config
// (three layers, linux/amd64, entrypoint `isthmus`), umoci unpacks it, and in the unpacked
// root file system `isthmus --version` and every component's --help run on the image's own
// Node, as do the programs the drivers call. Bad input gets a clear error and leaves no image behind.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { projectRoot } from '../sandbox/index.ts';
import { requireRootForTest, run, type Run } from './lib/cli.ts';

requireRootForTest('test/oci-image.test.ts');
const root = projectRoot();
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; isthmus: Record<string, string> };
const dir = mkdtempSync('/tmp/isthmus-image-');
const image = join(dir, 'image');
const TAG = 'under-test';
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const build = (args: readonly string[], env: Record<string, string> = {}): Promise<Run> =>
  run('bash', [join(root, 'scripts', 'build-image.sh'), ...args], { env, timeoutMs: 900_000 });
const inRoot = (rootfs: string, args: readonly string[]): Promise<Run> => run('chroot', [rootfs, ...args], { env: { PATH: IMAGE_PATH } });

test('builds an OCI image layout', async () => {
  assert.ok(existsSync(join(root, 'dist', 'cli', 'main.js')), 'dist/ is not built: run ./setup');
  const r = await build([image, TAG]);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, `image isthmus:${TAG}`);
  const layout = JSON.parse(readFileSync(join(image, 'oci-layout'), 'utf8')) as { imageLayoutVersion: string };
  assert.is(layout.imageLayoutVersion, '1.0.0');
  const index = JSON.parse(readFileSync(join(image, 'index.json'), 'utf8')) as { manifests: { mediaType: string; annotations?: Record<string, string> }[] };
  assert.equal(index.manifests.map((m) => [m.mediaType, m.annotations?.['org.opencontainers.image.ref.name']]), [['application/vnd.oci.image.manifest.v1+json', TAG]]);
  assert.equal(readdirSync(dirname(image)).filter((n) => n.startsWith('.image.')), [], 'a temporary folder was left');
});

test('skopeo reads it: three layers, linux/amd64, entrypoint isthmus, the version label', async () => {
  const r = await run('skopeo', ['inspect', `oci:${image}:${TAG}`]);
  assert.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { Architecture: string; Os: string; Layers: string[]; Labels: Record<string, string> };
  assert.is(info.Architecture, 'amd64');
  assert.is(info.Os, 'linux');
  assert.is(info.Layers.length, 3);
  for (const l of info.Layers) assert.ok(existsSync(join(image, 'blobs', ...l.split(':'))), `layer ${l} has no blob`);
  assert.is(info.Labels['org.opencontainers.image.version'], pkg.version);
  const c = await run('skopeo', ['inspect', '--config', `oci:${image}:${TAG}`]);
  assert.is(c.code, 0, c.stderr);
  const config = JSON.parse(c.stdout) as { config: { Entrypoint: string[]; Env: string[] }; rootfs: { diff_ids: string[] } };
  assert.equal(config.config.Entrypoint, ['isthmus']);
  assert.ok(config.config.Env.includes(`PATH=${IMAGE_PATH}`));
  assert.is(config.rootfs.diff_ids.length, 3);
});

test('umoci unpacks it, and isthmus --version and the drivers\' programs run in its root file system', async () => {
  const bundle = join(dir, 'bundle');
  const u = await run('umoci', ['unpack', '--image', `${image}:${TAG}`, bundle], { timeoutMs: 300_000 });
  assert.is(u.code, 0, u.stderr);
  const rootfs = join(bundle, 'rootfs');
  const v = await inRoot(rootfs, ['isthmus', '--version']);
  assert.is(v.code, 0, v.stderr);
  assert.is(v.stdout, `isthmus ${pkg.version} (node v${pkg.isthmus['node'] ?? ''})\n`);
  // every component's command loads in the image (each reads files beside dist/, such as broker.proto)
  for (const part of ['gateway', 'route-agent', 'mcs', 'dns', 'broker']) {
    const help = await inRoot(rootfs, ['isthmus', part, '--help']);
    assert.is(help.code, 0, `isthmus ${part} --help: ${help.stderr}`);
  }
  for (const [cmd, ...args] of [['ip', '-V'], ['nft', '--version'], ['iptables', '--version'], ['ipset', '--version'], ['conntrack', '--version'], ['wg', '--version'],
    ['/usr/local/libexec/isthmus/wireguard-go', '--version'], ['wireguard-go', '--version'], ['ping', '-V'], ['swanctl', '--help']] as string[][]) {
    const p = await inRoot(rootfs, [cmd ?? '', ...args]);
    assert.is(p.code, 0, `${cmd ?? ''} ${args.join(' ')}: ${p.stderr}`);
  }
  assert.ok(existsSync(join(rootfs, 'usr/lib/ipsec/charon')), 'charon is missing');
  assert.ok(readdirSync(join(rootfs, 'usr/lib/ipsec/plugins')).includes('libstrongswan-kernel-libipsec.so'), 'charon\'s kernel-libipsec plugin is missing');
  assert.not.ok(existsSync(join(rootfs, 'opt/isthmus/node_modules/typescript')), 'development dependencies were packed');
});

test('bad input: a clear error and no image', async () => {
  const bad = join(dir, 'bad');
  const tag = await build([bad, 'no/slash']);
  assert.is(tag.code, 1);
  assert.match(tag.stderr, 'is not an image tag');
  const noCache = await build([bad, TAG], { ISTHMUS_CACHE: join(dir, 'empty-cache'), PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
  assert.is(noCache.code, 1);
  assert.match(noCache.stderr, 'run ./setup');
  assert.not.ok(existsSync(bad));
  const usage = await build([]);
  assert.is(usage.code, 1);
  assert.match(usage.stderr, 'usage: build-image.sh OUT_DIR [TAG]');
});

test.run();
