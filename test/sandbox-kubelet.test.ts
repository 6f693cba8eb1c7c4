// e2e, needs root: every sandbox node answers as a kubelet does — the real kubectl
// does exec (stdin, TTY, exit codes), logs and port-forward through the real
// kube-apiserver; containers run their command for known images; the kubelet API
// refuses anyone but the apiserver.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Exec, KubeConfig, type V1Status } from '@kubernetes/client-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SandboxState } from '../sandbox/index.ts';
import { eventually, isthmus, kubectl, kubectlPath, requireRootForTest, run } from './lib/cli.ts';

requireRootForTest('test/sandbox-kubelet.test.ts');
const dir = mkdtempSync('/tmp/isthmus-kubelet-');
const sbx = join(dir, 'sandbox');
const env = { ISTHMUS_SANDBOX_DIR: sbx };
const kc = join(sbx, 'kubeconfig');

function state(): SandboxState {
  return JSON.parse(readFileSync(join(sbx, 'state.json'), 'utf8')) as SandboxState;
}

function kx(ctx: string, args: readonly string[], input?: string, env?: Record<string, string>): ReturnType<typeof run> {
  return run(kubectlPath(), ['--kubeconfig', kc, '--context', ctx, ...args], { ...(input === undefined ? {} : { input }), ...(env === undefined ? {} : { env }) });
}

function pod(name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels }, spec });
}

async function podIp(ctx: string, name: string): Promise<string> {
  return (await kubectl(kc, ctx, ['get', 'pod', name, '-o', 'jsonpath={.status.podIP}'])).trim();
}

async function events(ctx: string, name: string): Promise<string[]> {
  const out = await kubectl(kc, ctx, ['get', 'events', '--field-selector', `involvedObject.name=${name}`, '-o', 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}']);
  return out.split('\n').filter(Boolean);
}

function curl(args: readonly string[]): ReturnType<typeof run> {
  return run('curl', ['-s', '--max-time', '10', ...args]);
}

const SOCAT_ARGS = (proto: 'TCP' | 'UDP'): string[] => ['-v', '-v', `${proto}-LISTEN:42,crlf,reuseaddr,fork`, 'SYSTEM:echo pod ip $(MY_POD_IP)'];
const POD_IP_ENV = [{ name: 'MY_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }];

test.after(async () => {
  await isthmus(['sandbox', 'down'], env);
  rmSync(dir, { recursive: true, force: true });
});

test('up; every node advertises its kubelet port', async () => {
  const r = await isthmus(['sandbox', 'up', '--clusters', '2', '--port-base', '26800'], env);
  assert.is(r.code, 0, r.stderr);
  for (const ctx of ['c1', 'c2']) {
    const ports = await kubectl(kc, ctx, ['get', 'nodes', '-o', 'jsonpath={.items[*].status.daemonEndpoints.kubeletEndpoint.Port}']);
    assert.equal(ports.trim().split(' '), ['10250', '10250']);
  }
});

test('the kubelet API answers the apiserver only, and never runs a refused command', async () => {
  const c1 = state().clusters[0];
  const node = c1?.nodes[0];
  assert.ok(c1 && node);
  const pki = join(c1.dir, 'pki');
  const url = `https://${node.ip}:10250`;
  const ca = ['--cacert', join(pki, 'ca.crt')];
  assert.is((await curl([...ca, '-o', '/dev/null', '-w', '%{http_code}', `${url}/healthz`])).stdout, '401', 'no client certificate: 401');
  const admin = ['--cert', join(pki, 'admin.crt'), '--key', join(pki, 'admin.key')];
  const marker = join(dir, 'refused-ran');
  const refused = await curl([...ca, ...admin, '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '-H', 'Connection: Upgrade', '-H', 'Upgrade: SPDY/3.1',
    '-H', 'X-Stream-Protocol-Version: v4.channel.k8s.io', `${url}/exec/kube-system/x/y?command=touch&command=${encodeURIComponent(marker)}&output=1`]);
  assert.is(refused.stdout, '403', 'a certificate of the same CA but not the apiserver\'s: 403');
  assert.not.ok(existsSync(marker), 'the refused command never ran');
  const apiserver = ['--cert', join(pki, 'apiserver-kubelet-client.crt'), '--key', join(pki, 'apiserver-kubelet-client.key')];
  assert.is((await curl([...ca, ...apiserver, `${url}/healthz`])).stdout.trim(), 'ok');
  const metrics = (await curl([...ca, ...apiserver, `${url}/metrics`])).stdout;
  assert.match(metrics, 'isthmus_sandbox_kubelet_api_requests_total{endpoint="exec",code="403"} 1');
  assert.match(metrics, 'isthmus_sandbox_kubelet_api_open_streams 0');
});

test('pods of the conformance suite start in both clusters', async () => {
  for (const ctx of ['c1', 'c2']) {
    await kubectl(kc, ctx, ['apply', '-f', '-'], pod('hello', {
      containers: [
        { name: 'hello-tcp', image: 'alpine/socat', args: SOCAT_ARGS('TCP'), env: POD_IP_ENV },
        { name: 'hello-udp', image: 'alpine/socat', args: SOCAT_ARGS('UDP'), env: POD_IP_ENV },
      ],
    }, { app: 'hello' }));
    await kubectl(kc, ctx, ['apply', '-f', '-'], pod('tools', { containers: [{ name: 'tools', image: 'nicolaka/netshoot', command: ['sleep', 'infinity'] }] }));
    await kubectl(kc, ctx, ['apply', '-f', '-'], pod('netexec', { containers: [{ name: 'agnhost', image: 'registry.k8s.io/e2e-test-images/agnhost:2.53', args: ['netexec', '--http-port=8080', '--udp-port=8081'] }] }));
    await kubectl(kc, ctx, ['apply', '-f', '-'], pod('request', { containers: [{ name: 'request', image: 'busybox', args: ['/bin/sh', '-ec', "while :; do echo '.'; sleep 5 ; done"] }] }));
  }
  for (const ctx of ['c1', 'c2']) {
    const r = await kx(ctx, ['wait', '--for=condition=Ready', 'pod/hello', 'pod/tools', 'pod/request', 'pod/netexec', '--timeout=90s']);
    assert.is(r.code, 0, r.stderr);
  }
});

test('exec: stdout, stderr, exit code, stdin, hostname, in every cluster', async () => {
  for (const ctx of ['c1', 'c2']) {
    const r = await kx(ctx, ['exec', 'tools', '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.is(r.code, 3, r.stderr);
    assert.is(r.stdout, 'out\n');
    assert.match(r.stderr, 'err');
    const cat = await kx(ctx, ['exec', '-i', 'tools', '--', 'cat'], 'hello through stdin\n');
    assert.is(cat.stdout, 'hello through stdin\n', cat.stderr);
    assert.is((await kx(ctx, ['exec', 'tools', '--', 'hostname'])).stdout.trim(), 'tools');
    assert.is((await kx(ctx, ['exec', 'request', '--', 'true'])).code, 0);
  }
});

test('exec over SPDY all the way (a client without WebSockets: kube-apiserver passes the upgrade through)', async () => {
  const spdy = { KUBECTL_REMOTE_COMMAND_WEBSOCKETS: 'false' };
  const r = await kx('c1', ['exec', '-i', 'tools', '--', 'sh', '-c', 'cat; exit 5'], 'over spdy\n', spdy);
  assert.is(r.code, 5, r.stderr);
  assert.is(r.stdout, 'over spdy\n');
});

test("client-node's Exec: output and the exit status", async () => {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kc);
  kubeConfig.setCurrentContext('c1');
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const status = await new Promise<V1Status>((resolve, reject) => {
    new Exec(kubeConfig).exec('default', 'tools', 'tools', ['sh', '-c', 'echo from client-node; exit 4'], out, null, null, false, resolve).catch(reject);
  });
  assert.is(status.status, 'Failure');
  assert.is(status.details?.causes?.[0]?.message, '4');
  await new Promise((r) => setTimeout(r, 500));
  assert.is(text, 'from client-node\n', JSON.stringify(status));
});

test('netshoot runs nslookup, dig, nc and curl; socat answers "pod ip" over TCP and UDP', async () => {
  for (const ctx of ['c1', 'c2']) {
    const hello = await podIp(ctx, 'hello');
    // as the conformance suite does, ask until socat answers (a pod without a readiness probe is Ready before it listens)
    for (const udp of [false, true]) {
      let last = '';
      let tries = 0;
      await eventually(`socat in ${ctx} to answer over ${udp ? 'UDP' : 'TCP'}`, async () => {
        const r = await kx(ctx, ['exec', 'tools', '--', 'sh', '-c', `echo hi | nc -v ${udp ? '-u -w 1' : '-w 2'} ${hello} 42`]);
        tries++;
        if (!r.stdout.includes(`pod ip ${hello}`)) {
          last = JSON.stringify(r);
          return undefined;
        }
        if (tries > 1) console.log(`  (${ctx} ${udp ? 'UDP' : 'TCP'}: answered on try ${tries}; before: ${last})`);
        return true;
      }, 20_000).catch((e: unknown) => {
        throw new Error(`${String(e)}; last exec: ${last}`);
      });
    }
    const c = state().clusters.find((x) => x.name === ctx);
    const ns = await kx(ctx, ['exec', 'tools', '--', 'nslookup', 'kubernetes.default.svc.cluster.local']);
    assert.match(ns.stdout, c?.apiServiceIp ?? '?', ns.stderr);
    const dig = await kx(ctx, ['exec', 'tools', '--', 'dig', '+short', 'kubernetes.default.svc.cluster.local']);
    assert.is(dig.stdout.trim(), c?.apiServiceIp);
    const web = await kx(ctx, ['exec', 'tools', '--', 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', 'https://kubernetes.default.svc.cluster.local/version']);
    assert.match(web.stdout, /^(200|401|403)$/, web.stderr);
    const agn = await kx(ctx, ['exec', 'tools', '--', 'curl', '-s', `http://${await podIp(ctx, 'netexec')}:8080/hostname`]);
    assert.is(agn.stdout, 'netexec', 'agnhost netexec answers with its pod\'s hostname');
  }
});

test('exec -it in a pseudo-terminal, with the terminal size passed on', async () => {
  const inner = `stty rows 33 cols 101; ${kubectlPath()} --kubeconfig ${kc} --context c1 exec -it tools -- sh -c 'tty; stty size'`;
  const r = await run('script', ['-q', '-e', '-c', inner, '/dev/null'], { input: '' });
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  assert.match(r.stdout, '33 101');
});

test('exec of a program that is not there: 127; of one that is not executable: 126; the node keeps serving', async () => {
  const missing = await kx('c1', ['exec', 'tools', '--', 'no-such-program']);
  assert.is(missing.code, 127, missing.stderr);
  assert.match(missing.stderr, 'no-such-program');
  const notExec = await kx('c1', ['exec', 'tools', '--', '/dev/null']);
  assert.is(notExec.code, 126, notExec.stderr);
  assert.is((await kx('c1', ['exec', 'tools', '--', 'true'])).code, 0);
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('crash', { containers: [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'exit 1'] }] }));
  await eventually('crash to be restarting', async () => (Number(await kubectl(kc, 'c1', ['get', 'pod', 'crash', '-o', 'jsonpath={.status.containerStatuses[0].restartCount}'])) >= 2 ? true : undefined), 60_000);
  // between restarts (backoff) the container has no process: exec says so (it may catch the brief run)
  const dead = await eventually('exec refused while the container waits', async () => {
    const r = await kx('c1', ['exec', 'crash', '--', 'true']);
    return r.code !== 0 ? r : undefined;
  }, 30_000);
  assert.match(dead.stderr, 'is not running');
});

test('exec with 10 MB of stdin and with 10,000 arguments', async () => {
  const big = 'x'.repeat(10 * 1024 * 1024);
  const wc = await kx('c1', ['exec', '-i', 'tools', '--', 'wc', '-c'], big);
  assert.is(wc.stdout.trim(), String(big.length), wc.stderr);
  const args = Array.from({ length: 9_990 }, (_, i) => `a${i}`);
  const many = await kx('c1', ['exec', 'tools', '--', 'sh', '-c', 'echo $#', 'sh', ...args]);
  assert.is(many.stdout.trim(), '9990', many.stderr.slice(0, 500));
  // past 10,000 query parameters kube-apiserver (Go's net/url) passes the kubelet no query at all
  const tooMany = await kx('c1', ['exec', 'tools', '--', 'sh', '-c', 'echo $#', 'sh', ...args, ...args.slice(0, 10)]);
  assert.is.not(tooMany.code, 0);
  assert.match(tooMany.stderr, 'more than 10,000');
  assert.is((await kx('c1', ['exec', 'tools', '--', 'true'])).code, 0, 'the node keeps serving');
});

function kubeletFds(): number {
  const rec = state().processes.find((p) => p.name === 'c1/sandbox-kubelet');
  return rec === undefined ? -1 : readdirSync(`/proc/${rec.pid}/fd`).length;
}

function forwarders(): number {
  return execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('socat TCP4-LISTEN:10250') && l.includes(sbx)).length;
}

test('clients that disconnect mid-exec leave no process, socket or connection behind', async () => {
  const fdsBefore = kubeletFds();
  const fwdBefore = forwarders();
  for (let i = 0; i < 3; i++) {
    const child = spawn(kubectlPath(), ['--kubeconfig', kc, '--context', 'c1', 'exec', '-i', 'tools', '--', 'sleep', '4242'], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.write('some input');
    await eventually('the exec to start', async () => (execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).includes('sleep 4242') ? true : undefined), 20_000);
    child.kill('SIGKILL');
    await eventually("the exec'd process to end", async () => (execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).includes('sleep 4242') ? undefined : true), 30_000);
  }
  await eventually('the kubelet to hold no more sockets than before', async () => (kubeletFds() <= fdsBefore + 2 && forwarders() <= fwdBefore ? true : undefined), 30_000);
  assert.is((await kx('c1', ['exec', 'tools', '--', 'true'])).code, 0, 'the node keeps serving');
});

test('logs: --tail, --timestamps, --since, per container, -f', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('talker', { containers: [{ name: 'talk', image: 'busybox', command: ['sh', '-c', 'i=0; while :; do echo line $i; i=$((i+1)); sleep 0.2; done'] }] }));
  assert.is((await kx('c1', ['wait', '--for=condition=Ready', 'pod/talker', '--timeout=60s'])).code, 0);
  await eventually('a few lines', async () => ((await kubectl(kc, 'c1', ['logs', 'talker'])).split('\n').length > 5 ? true : undefined), 20_000);
  const tail = (await kubectl(kc, 'c1', ['logs', 'talker', '--tail', '2'])).trim().split('\n');
  assert.is(tail.length, 2);
  assert.ok(tail.every((l) => /^line \d+$/.test(l)), tail.join('|'));
  const ts = (await kubectl(kc, 'c1', ['logs', 'talker', '--tail', '1', '--timestamps'])).trim();
  assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line \d+$/);
  const all = (await kubectl(kc, 'c1', ['logs', 'talker'])).trim().split('\n').length;
  const recent = (await kubectl(kc, 'c1', ['logs', 'talker', '--since', '1s'])).trim().split('\n').length;
  assert.ok(recent < all && recent >= 1, `--since=1s gives fewer lines (${recent} of ${all})`);
  const perContainer = await kubectl(kc, 'c1', ['logs', 'hello', '-c', 'hello-tcp']);
  assert.match(perContainer, /length=\d+ from=0/, 'socat -v logs the data it moved on stderr, which kubectl logs -c shows');
  assert.match(perContainer, 'pod ip');
  const f = spawn(kubectlPath(), ['--kubeconfig', kc, '--context', 'c1', 'logs', '-f', 'talker', '--tail', '0']);
  let got = '';
  f.stdout.on('data', (d: Buffer) => (got += d.toString()));
  await eventually('logs -f to stream new lines', async () => (got.split('\n').filter((l) => l.startsWith('line')).length >= 3 ? true : undefined), 20_000);
  f.kill('SIGKILL');
});

test('logs --previous after a restart; restartPolicy, Completed and Failed, kubectl wait', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('flaky', { containers: [{ name: 'f', image: 'busybox', command: ['sh', '-c', 'echo run at $(date +%s%N); sleep 1; exit 1'] }] }));
  await eventually('a restart', async () => (Number(await kubectl(kc, 'c1', ['get', 'pod', 'flaky', '-o', 'jsonpath={.status.containerStatuses[0].restartCount}'])) >= 1 ? true : undefined), 60_000);
  const prev = await kubectl(kc, 'c1', ['logs', 'flaky', '--previous']);
  assert.match(prev, /^run at \d+/);
  const last = await kubectl(kc, 'c1', ['get', 'pod', 'flaky', '-o', 'jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}']);
  assert.is(last, '1');
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('done', { restartPolicy: 'Never', containers: [{ name: 'd', image: 'busybox', command: ['sh', '-c', 'echo finished'] }] }));
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('broken', { restartPolicy: 'Never', containers: [{ name: 'b', image: 'busybox', command: ['sh', '-c', 'exit 2'] }] }));
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('retry', { restartPolicy: 'OnFailure', containers: [{ name: 'r', image: 'busybox', command: ['sh', '-c', 'exit 0'] }] }));
  assert.is((await kx('c1', ['wait', '--for=jsonpath={.status.phase}=Succeeded', 'pod/done', 'pod/retry', '--timeout=60s'])).code, 0);
  assert.is((await kx('c1', ['wait', '--for=jsonpath={.status.phase}=Failed', 'pod/broken', '--timeout=60s'])).code, 0);
  assert.is(await kubectl(kc, 'c1', ['get', 'pod', 'broken', '-o', 'jsonpath={.status.containerStatuses[0].state.terminated.exitCode}']), '2');
  assert.is(await kubectl(kc, 'c1', ['get', 'pod', 'done', '-o', 'jsonpath={.status.containerStatuses[0].state.terminated.reason}']), 'Completed');
  assert.is((await kubectl(kc, 'c1', ['logs', 'done'])).trim(), 'finished', 'logs of a completed container');
});

test('a program the machine lacks: exit 127 with the reason in status and an Event; an unknown image without command: Running with an Event', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('nosuch', { restartPolicy: 'Never', containers: [{ name: 'n', image: 'example.com/tool:1', command: ['frobnicate-the-widgets'] }] }));
  assert.is((await kx('c1', ['wait', '--for=jsonpath={.status.phase}=Failed', 'pod/nosuch', '--timeout=60s'])).code, 0);
  const term = JSON.parse(await kubectl(kc, 'c1', ['get', 'pod', 'nosuch', '-o', 'jsonpath={.status.containerStatuses[0].state.terminated}'])) as { exitCode: number; reason: string; message: string };
  assert.is(term.exitCode, 127);
  assert.is(term.reason, 'StartError');
  assert.match(term.message, 'frobnicate-the-widgets');
  assert.ok((await events('c1', 'nosuch')).some((e) => e.startsWith('Failed') && e.includes('frobnicate-the-widgets')));
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('mystery', { containers: [{ name: 'm', image: 'example.com/mystery:1' }] }));
  assert.is((await kx('c1', ['wait', '--for=condition=Ready', 'pod/mystery', '--timeout=60s'])).code, 0);
  assert.ok((await events('c1', 'mystery')).some((e) => e.startsWith('NoProcess') && e.includes('example.com/mystery:1')));
  const inside = await kx('c1', ['exec', 'mystery', '--', 'sh', '-c', 'hostname; cat /etc/resolv.conf']);
  assert.match(inside.stdout, /^mystery\n/, 'exec with no process behind the container: the pod\'s network namespace and hostname');
  assert.match(inside.stdout, 'svc.cluster.local');
});

function portForward(ports: string): { out: () => string; stop: () => void } {
  const pf = spawn(kubectlPath(), ['--kubeconfig', kc, '--context', 'c1', 'port-forward', 'pod/web', ports]);
  let out = '';
  pf.stdout.on('data', (d: Buffer) => (out += d.toString()));
  pf.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return { out: () => out, stop: () => pf.kill('SIGKILL') };
}

test('port-forward to nginx; a closed port is an error to that client only', async () => {
  await kubectl(kc, 'c1', ['apply', '-f', '-'], pod('web', { containers: [{ name: 'nginx', image: 'nginx:1.27', ports: [{ containerPort: 80 }] }] }));
  assert.is((await kx('c1', ['wait', '--for=condition=Ready', 'pod/web', '--timeout=60s'])).code, 0);
  const open = portForward('28080:80');
  const closed = portForward('28081:81');
  try {
    await eventually('both port-forwards to listen', async () => (open.out().includes('28080') && closed.out().includes('28081') ? true : undefined), 20_000);
    assert.match((await curl(['http://127.0.0.1:28080/'])).stdout, 'Welcome to nginx!', open.out());
    assert.is((await curl(['-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:28081/'])).stdout, '000', 'nothing answers on port 81');
    await eventually('the error reaches that client', async () => (/error.*forwarding port 81/.test(closed.out()) ? true : undefined), 10_000);
    assert.match((await curl(['http://127.0.0.1:28080/'])).stdout, 'Welcome to nginx!', 'the other client goes on');
    assert.not.match(open.out(), 'error');
  } finally {
    open.stop();
    closed.stop();
  }
  await eventually('no socat connector left', async () => (execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' }).includes('TCP4:127.0.0.1:8') ? undefined : true), 20_000);
});

test('a StatefulSet of 2 behind a headless Service: each pod resolves by name and has its hostname', async () => {
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: 'None', selector: { app: 'sts' }, ports: [{ port: 80 }] } };
  const sts = {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'web', namespace: 'default' },
    spec: { serviceName: 'web', replicas: 2, selector: { matchLabels: { app: 'sts' } }, template: { metadata: { labels: { app: 'sts' } }, spec: { containers: [{ name: 'nginx', image: 'nginx' }] } } },
  };
  await kubectl(kc, 'c1', ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [svc, sts] }));
  for (const p of ['web-0', 'web-1']) {
    await eventually(`${p} Ready`, async () => ((await kx('c1', ['wait', '--for=condition=Ready', `pod/${p}`, '--timeout=5s'])).code === 0 ? true : undefined), 90_000);
    const ip = await podIp('c1', p);
    const answer = await eventually(`${p} in DNS`, async () => {
      const r = await kx('c1', ['exec', 'tools', '--', 'dig', '+short', `${p}.web.default.svc.cluster.local`]);
      return r.stdout.trim() === ip ? r.stdout.trim() : undefined;
    }, 30_000);
    assert.is(answer, ip);
    assert.is((await kx('c1', ['exec', p, '--', 'hostname'])).stdout.trim(), p);
  }
  const hostnames = await kubectl(kc, 'c1', ['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'jsonpath={.items[*].endpoints[*].hostname}']);
  assert.equal(hostnames.trim().split(' ').sort(), ['web-0', 'web-1']);
});

test('a restarted kubelet keeps every pod and its address, and serves exec again', async () => {
  const ips = async (): Promise<string> => kubectl(kc, 'c1', ['get', 'pods', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.podIP} {end}']);
  const before = await ips();
  const rec = state().processes.find((p) => p.name === 'c1/sandbox-kubelet');
  assert.ok(rec);
  process.kill(rec.pid, 'SIGKILL');
  const restarted = run(process.execPath, ['--no-warnings', 'cli/main.ts', 'sandbox', 'kubelet', '--cluster-dir', join(sbx, 'clusters', 'c1')], { timeoutMs: 600_000 });
  void restarted;
  await eventually('exec through the restarted kubelet', async () => ((await kx('c1', ['exec', 'web-0', '--', 'hostname'])).stdout.trim() === 'web-0' ? true : undefined), 60_000);
  assert.is(await ips(), before);
});

test.run();
