import { isIP } from 'node:net';
import { ErrorCodes, IsthmusError } from '../core/index.ts';

/**
 * The `clusterset.local` stanza the mcs controller keeps in a CoreDNS Corefile (the
 * ConfigMap kube-system/coredns, and NodeLocal DNSCache's kube-system/node-local-dns
 * where present), pure. The stanza sits between two marker comments; everything
 * outside them is left byte for byte as it was. Idempotent: applying the same target
 * twice gives the same text; target undefined removes the stanza (and only it).
 *
 * The stanza forwards the zone to `isthmus dns`, with no cache (an answer must change
 * within seconds of a cluster's cable going down) and `reload`, so a CoreDNS that
 * watches its Corefile picks up later changes. It listens on the same port as the
 * Corefile's root server block (53 unless that block says otherwise).
 */
export const BEGIN_MARKER = '# BEGIN isthmus clusterset.local (managed by isthmus mcs; edits here are overwritten)';
export const END_MARKER = '# END isthmus clusterset.local';

function checkTarget(target: string): void {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(target);
  const host = m?.[1] ?? m?.[2] ?? '';
  const port = m?.[3] === undefined ? 53 : Number(m[3]);
  if (m === null || isIP(host) === 0 || !(port >= 1 && port <= 65535)) {
    throw new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `clusterset DNS target ${JSON.stringify(target)} is not an IP address with an optional :port (IPv6 as [addr]:port)`);
  }
}

/** The root server block's port: `.:5353 {` → 5353; 53 when none is named. */
export function rootPort(corefile: string): number {
  const m = /^\s*\.:(\d+)\s*\{/m.exec(corefile);
  return m?.[1] === undefined ? 53 : Number(m[1]);
}

export function withoutStanza(corefile: string): string {
  const lines = corefile.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const l of lines) {
    if (l.trim() === BEGIN_MARKER) inside = true;
    else if (inside && l.trim() === END_MARKER) inside = false;
    else if (!inside) out.push(l);
  }
  return out.join('\n');
}

/** The Corefile with the stanza forwarding to `target` (host[:port]), or without it when undefined. */
export function corefileWithStanza(corefile: string, target: string | undefined): string {
  const base = withoutStanza(corefile);
  if (target === undefined) return base;
  checkTarget(target);
  // NodeLocal DNSCache binds its own link-local address: listen where the root block does.
  const bind = /^\s*bind\s+[^\n{}]+$/m.exec(base)?.[0].trim();
  const stanza = [
    BEGIN_MARKER,
    `clusterset.local:${rootPort(base)} {`,
    ...(bind === undefined ? [] : [`    ${bind}`]),
    '    errors',
    `    forward . ${target}`,
    '    reload',
    '}',
    END_MARKER,
  ].join('\n');
  const trimmed = base.replace(/\n*$/, '');
  return `${trimmed}\n${stanza}\n`;
}

/** True when the Corefile outside our stanza already has `reload` (no restart needed after an edit). */
export function reloads(corefile: string): boolean {
  return /^\s*reload(\s|$)/m.test(withoutStanza(corefile));
}
