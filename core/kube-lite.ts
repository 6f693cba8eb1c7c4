import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { ErrorCodes, IsthmusError, messageOf } from './errors.ts';

/**
 * A small Kubernetes REST client for the agents that run on every node (the route agent):
 * credentials from a kubeconfig or the in-cluster service account, JSON requests and a
 * watch stream over node:http(s). @kubernetes/client-node's import alone costs ~90 MB of
 * RSS, paid once per node; the route agent, the DNS server and the mcs controller use this
 * instead (other controllers that run once per cluster keep using client-node, k8s.ts).
 *
 * Supported credentials: token, tokenFile, client certificate and key (data or file), CA
 * (data or file), insecure-skip-tls-verify, and the in-cluster service account (its token is
 * re-read on every request, so a rotated token is picked up). Exec and auth-provider plugins
 * are refused with what to use instead.
 */

export const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const IN_CLUSTER_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

export interface LoadKubeConfigOptions {
  /** Path of a kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster). */
  kubeconfig?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
}

/** Where credentials come from, in kubectl's order: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster. */
export type KubeconfigSource = { kind: 'files'; files: string[]; source: string } | { kind: 'in-cluster'; source: string };

export function kubeconfigSource(options: LoadKubeConfigOptions): KubeconfigSource {
  if (options.kubeconfig !== undefined) {
    requireFile(options.kubeconfig, 'check the --kubeconfig path');
    return { kind: 'files', files: [options.kubeconfig], source: options.kubeconfig };
  }
  const env = process.env['KUBECONFIG'];
  if (env) {
    const files = env.split(delimiter).filter((f) => f !== '');
    for (const f of files) requireFile(f, 'fix the KUBECONFIG environment variable or pass --kubeconfig');
    return { kind: 'files', files, source: files.join(delimiter) };
  }
  const home = join(homedir(), '.kube', 'config');
  if (existsSync(home)) return { kind: 'files', files: [home], source: home };
  if (existsSync(IN_CLUSTER_TOKEN)) return { kind: 'in-cluster', source: 'the in-cluster service account' };
  throw new IsthmusError(ErrorCodes.NOT_FOUND, 'no kubeconfig found: pass --kubeconfig, set KUBECONFIG, or create ~/.kube/config');
}

function requireFile(file: string, hint: string): void {
  if (!existsSync(file)) throw new IsthmusError(ErrorCodes.NOT_FOUND, `kubeconfig file ${file} does not exist: ${hint}`, { context: { kubeconfig: file } });
}

/** The apiserver and the credentials to reach it. */
export interface KubeTarget {
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly token?: string;
  /** Re-read on every request. */
  readonly tokenFile?: string;
  readonly insecure: boolean;
  /** Where it came from, for errors. */
  readonly source: string;
}

type Named = { name?: unknown; [k: string]: unknown };
const rec = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The target of one context of parsed kubeconfig documents (several files merge as kubectl
 * merges them: the first definition of a name wins, and the first current-context). Files
 * named in the config are read relative to the file that names them.
 */
export function kubeTargetFrom(docs: readonly { doc: unknown; file: string }[], context: string | undefined, source: string): KubeTarget {
  const named = (key: string): Map<string, { v: Record<string, unknown>; dir: string }> => {
    const m = new Map<string, { v: Record<string, unknown>; dir: string }>();
    for (const { doc, file } of docs) {
      const list = rec(doc)[key];
      for (const e of Array.isArray(list) ? (list as Named[]) : []) {
        const name = str(rec(e).name);
        if (name !== undefined && !m.has(name)) m.set(name, { v: rec(e), dir: dirname(file) });
      }
    }
    return m;
  };
  const contexts = named('contexts');
  const list = `available: ${[...contexts.keys()].join(', ') || 'none'}`;
  if (contexts.size === 0) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source} defines no contexts; check that it is a kubeconfig file (kubectl config get-contexts --kubeconfig ${source})`);
  const current = context ?? docs.map((d) => str(rec(d.doc)['current-context'])).find((c) => c !== undefined);
  if (current === undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: it sets no current-context (${list}); pass --context`);
  const ctx = contexts.get(current);
  if (ctx === undefined) {
    throw context !== undefined
      ? new IsthmusError(ErrorCodes.NOT_FOUND, `context "${current}" is not in kubeconfig ${source} (${list}); pass one of those with --context`)
      : new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: its current-context "${current}" is not defined (${list}); pass --context`);
  }
  const c = rec(ctx.v['context']);
  const clusterName = str(c['cluster']) ?? '';
  const cluster = named('clusters').get(clusterName);
  if (cluster === undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: context "${current}" names cluster "${clusterName}", which is not defined there; fix the file or pick another --context`);
  const userName = str(c['user']);
  const user = userName === undefined ? undefined : named('users').get(userName);
  if (userName !== undefined && user === undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: context "${current}" names user "${userName}", which is not defined there; fix the file or pick another --context`);
  const cl = rec(cluster.v['cluster']);
  const u = rec(user?.v['user']);
  const server = str(cl['server']);
  if (server === undefined) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: cluster "${clusterName}" has no server; fix the file`);
  if (u['exec'] !== undefined || u['auth-provider'] !== undefined) {
    throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: user "${userName ?? ''}" authenticates through an exec or auth-provider plugin, which node agents do not run; give them a ServiceAccount token (in-cluster) or a token or client-certificate kubeconfig`);
  }
  const bytes = (data: unknown, file: unknown, dir: string, what: string): Buffer | undefined => {
    const d = str(data);
    if (d !== undefined) return Buffer.from(d, 'base64');
    const f = str(file);
    if (f === undefined) return undefined;
    const path = isAbsolute(f) ? f : join(dir, f);
    try {
      return readFileSync(path);
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${source}: the ${what} file ${path} cannot be read (${messageOf(err)}); fix the path`);
    }
  };
  const udir = user?.dir ?? cluster.dir;
  const ca = bytes(cl['certificate-authority-data'], cl['certificate-authority'], cluster.dir, 'certificate-authority');
  const cert = bytes(u['client-certificate-data'], u['client-certificate'], udir, 'client-certificate');
  const key = bytes(u['client-key-data'], u['client-key'], udir, 'client-key');
  const token = str(u['token']);
  const tokenFile = str(u['tokenFile']);
  return {
    server: server.replace(/\/+$/, ''), insecure: cl['insecure-skip-tls-verify'] === true, source,
    ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }),
    ...(token === undefined ? {} : { token }), ...(tokenFile === undefined ? {} : { tokenFile: isAbsolute(tokenFile) ? tokenFile : join(udir, tokenFile) }),
  };
}

/** The target the options select (see kubeconfigSource). */
export function loadKubeTarget(options: LoadKubeConfigOptions = {}): KubeTarget {
  const src = kubeconfigSource(options);
  if (src.kind === 'in-cluster') {
    const host = process.env['KUBERNETES_SERVICE_HOST'];
    const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
    if (!host) throw new IsthmusError(ErrorCodes.INVALID_CONFIG, 'in-cluster credentials found but KUBERNETES_SERVICE_HOST is not set: run inside a pod or pass --kubeconfig');
    return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, ca: readFileSync(IN_CLUSTER_CA), tokenFile: IN_CLUSTER_TOKEN, insecure: false, source: src.source };
  }
  const docs = src.files.map((file) => {
    try {
      return { doc: loadYaml(readFileSync(file, 'utf8')), file };
    } catch (err) {
      throw new IsthmusError(ErrorCodes.INVALID_CONFIG, `kubeconfig ${file} cannot be read: ${messageOf(err).split('\n')[0] ?? ''}; check that it is a valid kubeconfig YAML file`, { cause: err });
    }
  });
  return kubeTargetFrom(docs, options.context, src.source);
}

/** A failed request: `status` is the HTTP status (0 when none came back). */
export class KubeRequestError extends IsthmusError {
  readonly status: number;
  constructor(status: number, message: string) {
    const code = status === 401 ? ErrorCodes.UNAUTHENTICATED : status === 403 ? ErrorCodes.PERMISSION_DENIED : status === 404 ? ErrorCodes.NOT_FOUND
      : status === 409 ? ErrorCodes.ALREADY_EXISTS : status === 0 ? ErrorCodes.UNAVAILABLE : ErrorCodes.INTERNAL;
    super(code, message);
    this.status = status;
  }
}

/** A watch that has said nothing for this long is ended and resumed (KubeRest.watch). */
const WATCH_IDLE_MS = 90_000;

/** At most this much of one response body or watch line is read (a listener has limits, a client too). */
const MAX_BODY = 64 * 1024 * 1024;

export class KubeRest {
  readonly target: KubeTarget;

  constructor(target: KubeTarget) {
    this.target = target;
  }

  #open(method: string, path: string, body: string | undefined, signal: AbortSignal | undefined, timeoutMs: number, contentType = 'application/json'): Promise<IncomingMessage> {
    const t = this.target;
    const url = new URL(t.server + path);
    const token = t.tokenFile !== undefined ? readFileSync(t.tokenFile, 'utf8').trim() : t.token;
    const headers: Record<string, string> = { accept: 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
    if (body !== undefined) Object.assign(headers, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) });
    const tls = url.protocol === 'https:' ? { ...(t.ca === undefined ? {} : { ca: t.ca }), ...(t.cert === undefined ? {} : { cert: t.cert }), ...(t.key === undefined ? {} : { key: t.key }), rejectUnauthorized: !t.insecure } : {};
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers, ...tls, ...(signal === undefined ? {} : { signal }) }, resolve);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new KubeRequestError(0, `${method} ${path} at ${t.server}: ${messageOf(err)}`)));
      req.end(body);
    });
  }

  /**
   * One JSON request; a non-2xx answer throws KubeRequestError with the apiserver's message.
   * `contentType` is the body's (default application/json; a PATCH names its kind, e.g.
   * application/merge-patch+json).
   */
  async json<T>(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.#open(method, path, body === undefined ? undefined : JSON.stringify(body), undefined, 30_000, contentType);
    let text = '';
    for await (const chunk of res) {
      text += String(chunk);
      if (text.length > MAX_BODY) {
        res.destroy();
        throw new KubeRequestError(0, `${method} ${path}: the answer is larger than ${MAX_BODY} bytes`);
      }
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      let message = text.slice(0, 500);
      try {
        message = str(rec(JSON.parse(text))['message']) ?? message;
      } catch {
        // not a Status object
      }
      throw new KubeRequestError(status, `${method} ${path}: ${status} ${message}`);
    }
    return JSON.parse(text) as T;
  }

  /**
   * A watch: calls `onEvent` with each event the server sends until the server ends the
   * stream or nothing (not even a bookmark, which the apiserver sends about every minute
   * when asked for) has come for `idleMs` (resolves: the caller resumes from its last
   * resourceVersion, so a connection that died without a word is replaced within `idleMs`),
   * or the connection fails or `signal` aborts (rejects).
   */
  async watch(path: string, onEvent: (e: { type: string; object: unknown }) => void, signal: AbortSignal, idleMs = WATCH_IDLE_MS): Promise<void> {
    const res = await this.#open('GET', path, undefined, signal, 30_000);
    if ((res.statusCode ?? 0) !== 200) {
      let text = '';
      for await (const chunk of res) text = (text + String(chunk)).slice(0, 2000);
      throw new KubeRequestError(res.statusCode ?? 0, `watch ${path}: ${String(res.statusCode)} ${text.slice(0, 500)}`);
    }
    let idle = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        res.destroy();
      }, idleMs);
    };
    res.socket.setTimeout(0); // the idle timer below replaces the request's
    arm();
    try {
      res.setEncoding('utf8');
      let buf = '';
      // a destroyed stream (the idle timer, a broken connection) ends this loop with an error
      for await (const chunk of res as AsyncIterable<string>) {
        arm();
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          const e = rec(JSON.parse(line));
          onEvent({ type: String(e['type']), object: e['object'] });
        }
        if (buf.length > MAX_BODY) throw new KubeRequestError(0, `watch ${path}: one event is larger than ${MAX_BODY} bytes`);
      }
    } catch (err) {
      if (!idle) throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The status of one node's own resource (`isthmus.dev/v1alpha1` `plural` in `namespace`,
 * named after the node, `spec.nodeName` set): the object is created when missing, then its
 * status replaced — only when it differs from the last status this writer wrote. A failed
 * write throws and is tried again by the next call. Used by the route agent (RouteAgent) and
 * the policy agent (PolicyAgent).
 */
export class NodeStatusWriter {
  readonly #kube: KubeRest;
  readonly #path: string;
  readonly #object: { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; spec: { nodeName: string } };
  #written = '';

  constructor(kube: KubeRest, o: { plural: string; kind: string; namespace: string; node: string }) {
    this.#kube = kube;
    this.#path = `/apis/isthmus.dev/v1alpha1/namespaces/${encodeURIComponent(o.namespace)}/${o.plural}`;
    this.#object = { apiVersion: 'isthmus.dev/v1alpha1', kind: o.kind, metadata: { name: o.node, namespace: o.namespace }, spec: { nodeName: o.node } };
  }

  async write(status: object): Promise<void> {
    const text = JSON.stringify(status);
    if (text === this.#written) return;
    const item = `${this.#path}/${encodeURIComponent(this.#object.metadata.name)}`;
    let current: Record<string, unknown>;
    try {
      current = await this.#kube.json<Record<string, unknown>>('GET', item);
    } catch (err) {
      if (!(err instanceof KubeRequestError) || err.status !== 404) throw err;
      current = await this.#kube.json<Record<string, unknown>>('POST', this.#path, this.#object);
    }
    await this.#kube.json('PUT', `${item}/status`, { ...current, status });
    this.#written = text;
  }
}
