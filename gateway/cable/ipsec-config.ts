import { ErrorCodes, IsthmusError, certificateInfo, cidrContains, formatCidr, formatIp, keyMatchesCertificate, parseCidr, parseIp, verifyChain } from '../../core/index.ts';
import type { CableSpec, CableStatus, LocalEndpoint } from './driver.ts';
import { yes, type ViciMessage } from './vici.ts';

/**
 * The pure half of the ipsec driver (ipsec.ts): credentials check, spec validation, the
 * VICI load-conn message of a cable, parsing list-sas and the status of a cable, and the
 * plans of the libipsec data path (anchor addresses, routes). No I/O.
 */
export type IpsecAuth =
  | { readonly mode: 'pubkey'; readonly localId: string }
  | { readonly mode: 'psk'; readonly localId: string };

export const NAME_PREFIX = 'isthmus-';
export const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function connName(remoteCluster: string): string {
  return `${NAME_PREFIX}${remoteCluster}`;
}

export function childName(remoteCluster: string): string {
  return `${NAME_PREFIX}${remoteCluster}-net`;
}

/** The side whose cluster id sorts lower initiates. */
export function isInitiator(localCluster: string, remoteCluster: string): boolean {
  return localCluster < remoteCluster;
}

/** The PEM blocks of a bundle. */
export function pemBlocks(pem: string): string[] {
  return [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].map((m) => `${m[0]}\n`);
}

/** The authentication chosen from the secrets (pure; validates, never echoes a secret). */
export function authFromSecrets(local: LocalEndpoint): IpsecAuth {
  const s = local.secrets;
  const certPem = s['certPem'];
  if (certPem !== undefined && certPem !== '') {
    const keyPem = s['keyPem'];
    const caPem = s['caPem'];
    if (keyPem === undefined || keyPem === '' || caPem === undefined || caPem === '') {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'ipsec certificate mode needs secrets certPem, keyPem and caPem: issue them with `isthmus certs issue`');
    }
    const info = certificateInfo(certPem);
    const cn = info.commonName;
    if (cn === undefined) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec gateway certificate has no CN');
    if (!info.dnsNames.includes(cn)) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the ipsec gateway certificate ${cn} does not carry its CN as a DNS name: issue it with \`isthmus certs issue\``);
    }
    // the CA may be a bundle (old and new CA during a rotation): one of them must have issued the certificate
    const cas = pemBlocks(caPem);
    let chainError: unknown = new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec CA (secret caPem) holds no certificate');
    for (const ca of cas) {
      try {
        verifyChain(certPem, ca);
        chainError = undefined;
        break;
      } catch (err) {
        chainError = err;
      }
    }
    if (chainError !== undefined) throw chainError;
    if (!keyMatchesCertificate(keyPem, certPem)) {
      throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, `the ipsec private key does not belong to certificate ${cn}: give the key written with it`);
    }
    return { mode: 'pubkey', localId: cn };
  }
  const psk = s['psk'];
  if (psk !== undefined && psk !== '') {
    if (Buffer.byteLength(psk) < 16) throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'the ipsec PSK is too short: generate one with `isthmus certs psk`');
    return { mode: 'psk', localId: local.clusterId };
  }
  throw new IsthmusError(ErrorCodes.BAD_CREDENTIALS, 'ipsec needs secrets certPem/keyPem/caPem (certificates) or psk: issue them with `isthmus certs`');
}

/** The remote IKE identity of a cable. */
export function remoteId(spec: CableSpec): string {
  const cn = spec.backend['cert-cn'];
  return cn !== undefined && cn !== '' ? cn : spec.remoteCluster;
}

/** Why a spec cannot be applied, or undefined (pure). */
export function specProblem(local: LocalEndpoint, spec: CableSpec): string | undefined {
  if (!LABEL.test(spec.remoteCluster)) return `remote cluster id ${JSON.stringify(spec.remoteCluster)} is not an RFC-1123 label`;
  if (spec.remoteCluster === local.clusterId) return 'a cable to the local cluster itself';
  let fam: number;
  try {
    fam = parseIp(spec.remoteIp).family;
  } catch {
    return `remote address ${JSON.stringify(spec.remoteIp)} is not an IP address`;
  }
  if (fam !== parseIp(local.privateIp).family) return `remote address ${spec.remoteIp} is not of the local address's family (${local.privateIp})`;
  if (!Number.isInteger(spec.remotePort) || spec.remotePort < 1 || spec.remotePort > 65535) return `remote port ${spec.remotePort} is not between 1 and 65535`;
  if (spec.remoteCidrs.length === 0) return 'the remote cluster has no CIDRs';
  for (const c of spec.remoteCidrs) {
    try {
      parseCidr(c);
    } catch {
      return `remote CIDR ${JSON.stringify(c)} is not a CIDR`;
    }
  }
  const id = remoteId(spec);
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(id)) return `remote identity ${JSON.stringify(id)} is not a DNS name`;
  return undefined;
}

export interface ConnTimings {
  readonly dpdDelay: string;
  readonly ikeRekeyTime: string;
  readonly childRekeyTime: string;
}

/** The load-conn message for one cable (pure; holds no secret). */
export function connConfig(local: LocalEndpoint, auth: IpsecAuth, spec: CableSpec, t: ConnTimings): ViciMessage {
  const initiator = isInitiator(local.clusterId, spec.remoteCluster);
  const authMode = auth.mode === 'pubkey' ? 'pubkey' : 'psk';
  return {
    [connName(spec.remoteCluster)]: {
      version: '2',
      local_addrs: [local.privateIp],
      remote_addrs: [spec.remoteIp],
      local_port: String(local.port),
      remote_port: String(spec.remotePort),
      encap: spec.natTraversal ? 'yes' : 'no',
      mobike: 'no',
      dpd_delay: t.dpdDelay,
      rekey_time: t.ikeRekeyTime,
      keyingtries: '1',
      unique: 'replace',
      proposals: ['aes128gcm16-prfsha256-x25519', 'aes256-sha256-modp2048'],
      local: { auth: authMode, id: auth.localId },
      remote: { auth: authMode, id: remoteId(spec) },
      children: {
        [childName(spec.remoteCluster)]: {
          mode: 'tunnel',
          local_ts: [...local.cidrs],
          remote_ts: [...spec.remoteCidrs],
          esp_proposals: ['aes128gcm16', 'aes256-sha256'],
          rekey_time: t.childRekeyTime,
          start_action: 'none',
          dpd_action: initiator ? 'restart' : 'clear',
          close_action: 'none',
        },
      },
    },
  };
}

/** Stable comparison key of a spec (what set() compares against what was loaded). */
export function specKey(s: CableSpec): string {
  const backend = Object.keys(s.backend).sort().map((k) => [k, s.backend[k]]);
  return JSON.stringify([s.remoteCluster, s.remoteIp, s.remotePort, [...s.remoteCidrs], s.natTraversal, backend]);
}

export function str(v: ViciMessage[string] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function section(v: ViciMessage[string] | undefined): ViciMessage | undefined {
  return v !== undefined && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) ? (v as ViciMessage) : undefined;
}

/** What list-sas says about one IKE_SA, reduced to what the status needs (pure). */
export interface SaView {
  readonly uniqueId: string;
  readonly ikeState: string;
  readonly established: number | undefined;
  readonly children: readonly { state: string; bytesIn: number; bytesOut: number; encap: boolean }[];
}

/** Groups the list-sa events by IKE_SA config name (pure). */
export function parseListSas(events: readonly ViciMessage[]): Map<string, SaView[]> {
  const out = new Map<string, SaView[]>();
  for (const ev of events) {
    for (const [name, v] of Object.entries(ev)) {
      const ike = section(v);
      if (ike === undefined) continue;
      const children: SaView['children'][number][] = [];
      for (const cv of Object.values(section(ike['child-sas']) ?? {})) {
        const c = section(cv);
        if (c === undefined) continue;
        children.push({
          state: str(c['state']) ?? 'UNKNOWN',
          bytesIn: Number(str(c['bytes-in']) ?? 0),
          bytesOut: Number(str(c['bytes-out']) ?? 0),
          encap: yes(c['encap']),
        });
      }
      const est = str(ike['established']);
      const list = out.get(name) ?? [];
      list.push({ uniqueId: str(ike['uniqueid']) ?? '', ikeState: str(ike['state']) ?? 'UNKNOWN', established: est === undefined ? undefined : Number(est), children });
      out.set(name, list);
    }
  }
  return out;
}

/** The status of one cable from its SAs and what the driver knows (pure). */
export function cableStatus(
  spec: CableSpec,
  sas: readonly SaView[],
  context: { initiator: boolean; lastError: string | undefined; nowMs: number },
): CableStatus {
  const base = { remoteCluster: spec.remoteCluster, remoteIp: spec.remoteIp };
  const up = sas.find((s) => s.ikeState === 'ESTABLISHED' && s.children.some((c) => c.state === 'INSTALLED'));
  if (up !== undefined) {
    const installed = up.children.filter((c) => c.state === 'INSTALLED');
    return {
      ...base,
      state: 'connected',
      rxBytes: installed.reduce((n, c) => n + c.bytesIn, 0),
      txBytes: installed.reduce((n, c) => n + c.bytesOut, 0),
      ...(up.established === undefined ? {} : { establishedAt: context.nowMs - up.established * 1000 }),
    };
  }
  if (context.lastError !== undefined) return { ...base, state: 'error', message: context.lastError };
  const any = sas[0];
  if (any !== undefined) {
    const child = any.children[0];
    return { ...base, state: 'connecting', message: `IKE_SA ${any.ikeState}${child === undefined ? ', no CHILD_SA yet' : `, CHILD_SA ${child.state}`}` };
  }
  return {
    ...base,
    state: 'connecting',
    message: context.initiator ? 'initiating' : `waiting for ${spec.remoteCluster} to initiate (the lower cluster id initiates)`,
  };
}

const HINTS: readonly [RegExp, string][] = [
  [/AUTHENTICATION_FAILED/, 'the remote gateway refused our credentials: does it trust the same clusterset CA (or hold the same PSK)?'],
  [/no trusted .* found|constraint check failed/, 'the remote certificate is not from the clusterset CA or does not carry the expected identity (cert-cn)'],
  [/no shared key found|tried \d+ shared key/, 'the PSKs differ'],
  [/giving up after \d+ retransmits|peer not responding/, 'no answer from the remote gateway: check its address and that UDP 500 and 4500 reach it'],
  [/NO_PROPOSAL_CHOSEN/, 'the remote gateway has no matching connection (yet): it may not know this cluster'],
  [/TS_UNACCEPTABLE/, 'the remote gateway expects other CIDRs'],
];

/** The most telling line of an initiation's control log, with a hint what to check (pure). */
export function failureReason(logLines: readonly string[], errmsg: string): string {
  for (const [re, hint] of HINTS) {
    const line = logLines.find((l) => re.test(l));
    if (line !== undefined) return `${line} (${hint})`;
  }
  const failed = logLines.find((l) => /failed/i.test(l));
  return failed ?? errmsg;
}


// ---- the kernel-libipsec data path (see "Data path" in ipsec.ts) ----

/** The driver's own routing table for the remote CIDRs, looked up by a rule of the same priority (before charon's 220). */
export const ROUTE_TABLE = 219;
export const RULE_PRIORITY = 219;
/** kernel-libipsec's TUN device. */
export const TUN_DEVICE = 'ipsec0';

/** An address the host holds, as charon sees it: global scope on an interface that is up. */
export interface HostAddress {
  readonly ip: string;
  readonly dev: string;
}

interface IpAddrJson {
  ifname?: unknown;
  flags?: unknown;
  addr_info?: { family?: unknown; local?: unknown; scope?: unknown; tentative?: unknown; dadfailed?: unknown }[];
}

/** The usable addresses in the output of `ip -j address show` (pure). */
export function parseAddresses(json: string): HostAddress[] {
  let links: IpAddrJson[];
  try {
    links = JSON.parse(json) as IpAddrJson[];
  } catch {
    return [];
  }
  const out: HostAddress[] = [];
  for (const l of Array.isArray(links) ? links : []) {
    if (typeof l.ifname !== 'string' || !Array.isArray(l.flags) || !l.flags.includes('UP')) continue;
    for (const a of Array.isArray(l.addr_info) ? l.addr_info : []) {
      // charon skips link- and host-scope addresses; a tentative one cannot be a route source yet
      if (typeof a.local !== 'string' || a.scope !== 'global' || a.tentative === true || a.dadfailed === true) continue;
      out.push({ ip: a.local, dev: l.ifname });
    }
  }
  return out;
}

/** The address given to the host for a local CIDR in which it holds none: the CIDR's network address (never a pod or ClusterIP). */
export function anchorFor(cidr: string): string {
  const c = parseCidr(cidr);
  return formatIp(c.family, c.base);
}

/** The prefix length of a single address of ip's family. */
export function hostPrefix(ip: string): number {
  return parseIp(ip).family === 4 ? 32 : 128;
}

function inCidr(cidr: string, ip: string): boolean {
  try {
    return cidrContains(parseCidr(cidr), ip);
  } catch {
    return false;
  }
}

/**
 * Which anchors the host needs (pure): one on `lo` for every local CIDR in which it holds
 * no address of its own, since charon (kernel-libipsec before strongSwan 5.9.12) fails a
 * CHILD_SA whose local selector holds no local address. An anchor of ours stays while its
 * CIDR is local (removing it would flush charon's routes sourced from it); one whose CIDR
 * went is removed.
 */
export function planAnchors(cidrs: readonly string[], have: readonly HostAddress[], owned: readonly string[]): { anchors: string[]; add: string[]; remove: string[] } {
  const anchors: string[] = [];
  for (const cidr of cidrs) {
    const mine = owned.find((ip) => inCidr(cidr, ip));
    const own = have.some((a) => inCidr(cidr, a.ip) && !owned.includes(a.ip));
    if (mine !== undefined) anchors.push(mine);
    else if (!own) anchors.push(anchorFor(cidr));
  }
  const present = (ip: string): boolean => have.some((a) => a.ip === ip && a.dev === 'lo');
  return {
    anchors,
    add: anchors.filter((ip) => !present(ip)),
    remove: owned.filter((ip) => !anchors.includes(ip)),
  };
}

/**
 * The source of the routes to the remote CIDRs (pure): an address the host holds inside a
 * local CIDR of ip's family, its own before an anchor, in the order of the local CIDRs.
 */
export function preferredSource(cidrs: readonly string[], have: readonly HostAddress[], anchors: readonly string[], family: 4 | 6): string | undefined {
  const local = cidrs.filter((c) => parseCidr(c).family === family);
  for (const cidr of local) {
    const own = have.find((a) => inCidr(cidr, a.ip) && !anchors.includes(a.ip));
    if (own !== undefined) return own.ip;
  }
  for (const cidr of local) {
    const anchor = anchors.find((ip) => inCidr(cidr, ip));
    if (anchor !== undefined) return anchor;
  }
  return undefined;
}

/** One route of the driver's table as `ip -j route show table N` prints it. */
export interface TableRoute {
  readonly dst: string;
  readonly dev: string | undefined;
  readonly src: string | undefined;
}

/** The routes in the output of `ip -j route show table N`, destinations as canonical CIDRs (pure). */
export function parseRoutes(json: string): TableRoute[] {
  let rows: { dst?: unknown; dev?: unknown; prefsrc?: unknown }[];
  try {
    rows = JSON.parse(json) as typeof rows;
  } catch {
    return [];
  }
  const out: TableRoute[] = [];
  for (const r of Array.isArray(rows) ? rows : []) {
    if (typeof r.dst !== 'string') continue;
    let dst: string;
    try {
      dst = formatCidr(parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/${hostPrefix(r.dst)}`));
    } catch {
      continue; // "default" and the like are not ours
    }
    out.push({ dst, dev: typeof r.dev === 'string' ? r.dev : undefined, src: typeof r.prefsrc === 'string' ? r.prefsrc : undefined });
  }
  return out;
}

/** A wanted route: remote CIDR (canonical) → source address (or none). */
export type WantedRoutes = ReadonlyMap<string, string | undefined>;

/** What to change in the driver's table (pure): routes to replace (missing or different), then routes to delete. */
export function planRoutes(want: WantedRoutes, have: readonly TableRoute[]): { replace: string[]; remove: string[] } {
  const replace: string[] = [];
  for (const [dst, src] of want) {
    const r = have.find((h) => h.dst === dst);
    if (r === undefined || r.dev !== TUN_DEVICE || r.src !== src) replace.push(dst);
  }
  const remove = have.filter((h) => !want.has(h.dst)).map((h) => h.dst);
  return { replace, remove };
}

/** The canonical form of a CIDR (IPv6 text forms differ). */
export function canonicalCidr(cidr: string): string {
  return formatCidr(parseCidr(cidr));
}

/** Whether `ip -j rule show` lists the rule `priority → lookup table` (pure). */
export function hasTableRule(json: string, priority: number, table: number): boolean {
  try {
    const rules = JSON.parse(json) as { priority?: unknown; table?: unknown; src?: unknown }[];
    return Array.isArray(rules) && rules.some((r) => r.priority === priority && String(r.table) === String(table) && (r.src === undefined || r.src === 'all'));
  } catch {
    return false;
  }
}
