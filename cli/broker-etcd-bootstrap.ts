import { createLogger, custom, int, list, str, validateConfig } from '../core/index.ts';
import { etcdBootstrap, parseInitialCluster } from '../broker/etcd-bootstrap.ts';
import { optionRecord, optionsHelp, parseArgs, usageError } from './args.ts';

/**
 * `isthmus broker etcd-bootstrap`: the init container of the broker's etcd members
 * (deploy/broker/etcd.yaml). Writes the etcd config file the member starts with: as
 * usual when its data dir holds data, a new cluster when no peer answers, else a rejoin
 * of the running cluster (its stale entry removed, itself added). See broker/etcd-bootstrap.ts.
 */
const USAGE = 'isthmus broker etcd-bootstrap --name NAME --initial-cluster NAME=PEER_URL,… --config-file FILE [options]';

const schema = {
  name: str('this member\'s name, one of --initial-cluster\'s (the pod name)'),
  initialCluster: custom('every configured member, name=peer URL, comma-separated', (raw) => parseInitialCluster(String(raw ?? ''))),
  dataDir: str('this member\'s data dir (default /var/lib/etcd)', '/var/lib/etcd'),
  configFile: str('where to write the etcd config file (YAML) the member starts with'),
  listenClientUrls: str('etcd\'s listen-client-urls (default http://0.0.0.0:2379)', 'http://0.0.0.0:2379'),
  listenPeerUrls: str('etcd\'s listen-peer-urls (default http://0.0.0.0:2380)', 'http://0.0.0.0:2380'),
  clientPort: int('the client port of every member, at its peer URL\'s host (default 2379)', 2379, 1, 65535),
  probeSeconds: int('how long to wait for a peer to answer before starting a new cluster (default 10)', 10, 0, 600),
  timeout: int('seconds one membership change may take (default 30)', 30, 1, 600),
  etcdOption: list('more etcd settings for the config file, key=value, comma-separated (digits become numbers, true and false booleans)', custom('key=value', (raw) => {
    const m = /^([a-z0-9-]+)=(.*)$/.exec(String(raw));
    if (m === null) throw new Error(`${JSON.stringify(raw)} is not key=value`);
    const v = m[2] as string;
    return [m[1] as string, /^\d+$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v] as const;
  })),
};

export async function brokerEtcdBootstrap(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, new Set(['help']));
  if (args.options.has('help')) {
    process.stdout.write(optionsHelp(`${USAGE}: the init container of a broker etcd member; writes the config it starts with (as usual with data, new with no peer answering, else rejoining the running cluster)`, schema));
    return 0;
  }
  if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
  const cfg = validateConfig(schema, optionRecord(args), 'broker etcd-bootstrap options');
  await etcdBootstrap({
    name: cfg.name, initialCluster: cfg.initialCluster, dataDir: cfg.dataDir, configFile: cfg.configFile,
    listenClientUrls: cfg.listenClientUrls, listenPeerUrls: cfg.listenPeerUrls, clientPort: cfg.clientPort,
    probeMs: cfg.probeSeconds * 1000, changeTimeoutMs: cfg.timeout * 1000, extra: Object.fromEntries(cfg.etcdOption),
    logger: createLogger({ component: 'etcd-bootstrap' }),
  });
  return 0;
}
