import { readFileSync } from 'node:fs';

/**
 * kubeconfig files in JSON (a subset of YAML every Kubernetes client reads).
 * Pure rendering: the caller reads files and writes the result.
 */
export interface KubeconfigEntry {
  /** Used as the context, cluster and user name. */
  readonly name: string;
  readonly server: string;
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

export function renderKubeconfig(entries: readonly KubeconfigEntry[], currentContext?: string): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    'current-context': currentContext ?? entries[0]?.name ?? '',
    clusters: entries.map((e) => ({ name: e.name, cluster: { server: e.server, 'certificate-authority-data': b64(e.caPem) } })),
    users: entries.map((e) => ({ name: e.name, user: { 'client-certificate-data': b64(e.certPem), 'client-key-data': b64(e.keyPem) } })),
    contexts: entries.map((e) => ({ name: e.name, context: { cluster: e.name, user: e.name } })),
  };
  return JSON.stringify(config, null, 2) + '\n';
}

/** An entry from certificate files on disk. */
export function entryFromFiles(name: string, server: string, files: { ca: string; cert: string; key: string }): KubeconfigEntry {
  return {
    name,
    server,
    caPem: readFileSync(files.ca, 'utf8'),
    certPem: readFileSync(files.cert, 'utf8'),
    keyPem: readFileSync(files.key, 'utf8'),
  };
}
