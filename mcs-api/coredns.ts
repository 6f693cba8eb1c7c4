import { createHash } from 'node:crypto';
import type { V1ConfigMap, V1DaemonSet, V1Deployment } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { messageOf, type Service } from '../core/index.ts';
import type { KubeRest } from '../core/kube-lite.ts';
import { corefileWithStanza, reloads } from './corefile.ts';
import { isNotFound } from './kube-errors.ts';

/**
 * Keeps the clusterset.local stanza in the cluster's CoreDNS Corefile (ConfigMap
 * kube-system/coredns) and, where NodeLocal DNSCache runs, in kube-system/node-local-dns.
 * Checked at start and every `intervalMs` (default 10 s), so a hand edit is put back.
 * When the Corefile has no `reload`, CoreDNS would not notice the change: its
 * Deployment (or the node-local-dns DaemonSet) is restarted by stamping the Corefile's
 * hash on its pod template. When `target()` says there is no DNS server any more (the
 * isthmus-dns Service was deleted), the stanza is taken out again.
 */
export interface CorednsKeeperOptions {
  kube: KubeRest;
  /** Where to forward clusterset.local ("ip[:port]"), undefined when there is no DNS server; throws when it cannot tell. */
  target: () => Promise<string | undefined>;
  logger: Logger;
  intervalMs?: number;
}

const TARGETS = [
  { configMap: 'coredns', kind: 'Deployment', workload: 'coredns' },
  { configMap: 'node-local-dns', kind: 'DaemonSet', workload: 'node-local-dns' },
] as const;
const NS = 'kube-system';
const HASH_ANNOTATION = 'isthmus.dev/corefile-hash';

export class CorednsKeeper implements Service {
  readonly name = 'coredns-stanza';
  readonly #o: CorednsKeeperOptions;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();

  constructor(options: CorednsKeeperOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    await this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.#o.intervalMs ?? 10_000);
  }

  #tick(): Promise<void> {
    this.#busy = this.#busy.then(async () => {
      try {
        // no target (the isthmus-dns Service is gone: uninstalled) → the stanza goes too
        await this.sync(await this.#o.target());
      } catch (err) {
        this.#o.logger.warn({ err: messageOf(err) }, 'clusterset.local stanza not written; retrying');
      }
    });
    return this.#busy;
  }

  /** Puts the stanza forwarding to `target` (or, undefined, takes it out) in every Corefile present. */
  async sync(target: string | undefined): Promise<void> {
    for (const t of TARGETS) {
      const path = `/api/v1/namespaces/${NS}/configmaps/${t.configMap}`;
      let cm: V1ConfigMap;
      try {
        cm = await this.#o.kube.json<V1ConfigMap>('GET', path);
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      const before = cm.data?.['Corefile'];
      if (before === undefined) continue;
      const after = corefileWithStanza(before, target);
      if (after === before) continue;
      await this.#o.kube.json('PUT', path, { ...cm, data: { ...cm.data, Corefile: after } });
      this.#o.logger.info({ configMap: `${NS}/${t.configMap}`, target: target ?? null }, target === undefined ? 'clusterset.local stanza removed' : 'clusterset.local stanza written');
      if (!reloads(before)) await this.#restart(t.kind, t.workload, after);
    }
  }

  async #restart(kind: 'Deployment' | 'DaemonSet', name: string, corefile: string): Promise<void> {
    const hash = createHash('sha256').update(corefile).digest('hex').slice(0, 16);
    try {
      const path = `/apis/apps/v1/namespaces/${NS}/${kind === 'Deployment' ? 'deployments' : 'daemonsets'}/${name}`;
      const d = await this.#o.kube.json<V1Deployment | V1DaemonSet>('GET', path);
      const tpl = d.spec?.template;
      if (tpl === undefined) return;
      tpl.metadata = { ...tpl.metadata, annotations: { ...tpl.metadata?.annotations, [HASH_ANNOTATION]: hash } };
      await this.#o.kube.json('PUT', path, d);
      this.#o.logger.info({ workload: `${kind}/${name}` }, 'restarted to load the new Corefile (it has no reload plugin)');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#busy;
  }
}
