import { isIP } from 'node:net';

/**
 * The clusterset.local zone as the DNS server answers it: an in-memory index of owner
 * names → records, kept by the informers (never the API per query).
 *
 * What exists (ClusterSet DNS specification 1.0.0, and the cluster-local
 * specification it inherits for NXDOMAIN versus NODATA):
 * - the apex (SOA, NS) and `dns-version.<zone>` (TXT "1.0.0");
 * - ClusterSetIP: `<svc>.<ns>.svc.<zone>` A/AAAA = the clusterset IPs;
 *   `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV → `<svc>.<ns>.svc.<zone>` per named port;
 * - Headless: `<svc>.<ns>.svc.<zone>` A/AAAA = every ready endpoint address (the name
 *   does not exist while no endpoint is ready); `<hostname>.<clusterid>.<svc>.<ns>.svc.<zone>`
 *   A/AAAA per ready endpoint; SRV per named port and ready endpoint → its per-pod name;
 * - a bare-name SRV query (`<svc>.<ns>.svc.<zone>`) answers every port, duplicates
 *   (same port and target) once;
 * - empty non-terminals exist (NODATA, not NXDOMAIN): `svc.<zone>`, `<ns>.svc.<zone>`,
 *   `_<proto>.<svc>…`, and for headless `<clusterid>.<svc>…`, which carries no record
 *   (the specification forbids per-cluster records).
 * Names are stored lower-case without the trailing dot. Only ready endpoints count;
 * the import controller marks a disconnected cluster's endpoints not ready.
 */
export interface Srv {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface RRSet {
  a: string[];
  aaaa: string[];
  srv: Srv[];
  txt: string[];
}

export interface DnsPort {
  name: string;
  protocol: string;
  port: number;
}

export interface DnsEndpoint {
  hostname: string;
  addresses: string[];
  ready: boolean;
}

export interface DnsSlice {
  cluster: string;
  /** Names of the ports this cluster serves. */
  portNames: string[];
  endpoints: DnsEndpoint[];
}

export interface DnsService {
  namespace: string;
  name: string;
  type: 'ClusterSetIP' | 'Headless';
  ips: string[];
  ports: DnsPort[];
  slices: DnsSlice[];
}

export const SCHEMA_VERSION = '1.0.0';

const emptySet = (): RRSet => ({ a: [], aaaa: [], srv: [], txt: [] });

function addAddress(set: RRSet, address: string): void {
  const v = isIP(address);
  const list = v === 4 ? set.a : v === 6 ? set.aaaa : undefined;
  if (list !== undefined && !list.includes(address)) list.push(address);
}

/** The owner names one Service contributes: records, and empty non-terminals. */
export interface ServiceNames {
  records: Map<string, RRSet>;
  empty: Set<string>;
}

export function serviceNames(svc: DnsService, zone: string): ServiceNames {
  const records = new Map<string, RRSet>();
  const empty = new Set<string>();
  const base = `${svc.name}.${svc.namespace}.svc.${zone}`.toLowerCase();
  const get = (name: string): RRSet => {
    let s = records.get(name);
    if (s === undefined) records.set(name, (s = emptySet()));
    return s;
  };
  const named = svc.ports.filter((p) => p.name !== '');
  const srvName = (p: DnsPort): string => `_${p.name}._${p.protocol.toLowerCase()}.${base}`.toLowerCase();

  if (svc.type === 'ClusterSetIP') {
    if (svc.ips.length === 0) return { records, empty };
    const own = get(base);
    for (const ip of svc.ips) addAddress(own, ip);
    const seen = new Set<string>();
    for (const p of svc.ports) {
      const srv = { priority: 0, weight: 100, port: p.port, target: base };
      if (!seen.has(String(p.port))) own.srv.push(srv);
      seen.add(String(p.port));
    }
    for (const p of named) {
      get(srvName(p)).srv.push({ priority: 0, weight: 100, port: p.port, target: base });
      empty.add(`_${p.protocol.toLowerCase()}.${base}`);
    }
  } else {
    const ready: { cluster: string; hostname: string; addresses: string[]; portNames: string[] }[] = [];
    for (const s of svc.slices) {
      for (const e of s.endpoints) {
        if (!e.ready || e.hostname === '' || e.addresses.length === 0) continue;
        ready.push({ cluster: s.cluster.toLowerCase(), hostname: e.hostname.toLowerCase(), addresses: e.addresses, portNames: s.portNames });
      }
    }
    if (ready.length === 0) return { records, empty };
    const own = get(base);
    const bare = new Set<string>();
    for (const e of ready) {
      const pod = `${e.hostname}.${e.cluster}.${base}`;
      for (const a of e.addresses) {
        addAddress(own, a);
        addAddress(get(pod), a);
      }
      empty.add(`${e.cluster}.${base}`);
      for (const p of svc.ports) {
        if (p.name !== '' && !e.portNames.includes(p.name)) continue;
        const key = `${p.port}|${pod}`;
        if (!bare.has(key)) own.srv.push({ priority: 0, weight: 0, port: p.port, target: pod });
        bare.add(key);
        if (p.name === '') continue;
        get(srvName(p)).srv.push({ priority: 0, weight: 0, port: p.port, target: pod });
        empty.add(`_${p.protocol.toLowerCase()}.${base}`);
      }
    }
    // RFC 2782 weights: an even share of 100 among the targets of one name.
    for (const set of records.values()) {
      const w = set.srv.length === 0 ? 0 : Math.max(1, Math.floor(100 / set.srv.length));
      for (const s of set.srv) s.weight = w;
    }
  }
  empty.add(`${svc.namespace}.svc.${zone}`.toLowerCase());
  empty.add(`svc.${zone}`.toLowerCase());
  for (const n of records.keys()) empty.delete(n);
  return { records, empty };
}

export type Lookup = { exists: false } | { exists: true; records: RRSet };

/** The zone's index: one ServiceNames per Service key, and a name → records map over all. */
export class ZoneIndex {
  readonly zone: string;
  readonly #byService = new Map<string, ServiceNames>();
  readonly #records = new Map<string, RRSet>();
  readonly #empty = new Map<string, number>();
  readonly #apex: RRSet;
  #generation = 0;

  constructor(zone = 'clusterset.local') {
    this.zone = zone.toLowerCase().replace(/\.$/, '');
    this.#apex = emptySet();
    this.#records.set(`dns-version.${this.zone}`, { ...emptySet(), txt: [SCHEMA_VERSION] });
  }

  /** Changes with every set(): a cached answer of an older generation is stale. */
  get generation(): number {
    return this.#generation;
  }

  /** Number of Services indexed. */
  get size(): number {
    return this.#byService.size;
  }

  /** Replaces what Service `key` ("ns/name") contributes; undefined removes it. */
  set(key: string, svc: DnsService | undefined): void {
    this.#generation++;
    const old = this.#byService.get(key);
    if (old !== undefined) {
      for (const n of old.records.keys()) this.#records.delete(n);
      for (const n of old.empty) {
        const c = (this.#empty.get(n) ?? 0) - 1;
        if (c <= 0) this.#empty.delete(n);
        else this.#empty.set(n, c);
      }
      this.#byService.delete(key);
    }
    if (svc === undefined) return;
    const names = serviceNames(svc, this.zone);
    this.#byService.set(key, names);
    for (const [n, set] of names.records) this.#records.set(n, set);
    for (const n of names.empty) this.#empty.set(n, (this.#empty.get(n) ?? 0) + 1);
  }

  /** `name`: lower-case, no trailing dot. */
  lookup(name: string): Lookup {
    if (name === this.zone) return { exists: true, records: this.#apex };
    const r = this.#records.get(name);
    if (r !== undefined) return { exists: true, records: r };
    if (this.#empty.has(name)) return { exists: true, records: emptySet() };
    return { exists: false };
  }

  /** True when `name` is the zone or below it. */
  inZone(name: string): boolean {
    return name === this.zone || name.endsWith(`.${this.zone}`);
  }
}
