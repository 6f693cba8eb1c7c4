import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { custom, type Field, type Logger } from '../core/index.ts';
import { BrokerClient, parseBrokerAddresses, type BrokerClientOptions } from '../core/broker-api/index.ts';

/**
 * The --broker option of the parts: host:port, or several separated by commas (the
 * ConfigMap isthmus-gateway's BROKER: every address of broker-info); required, each
 * checked (parseBrokerAddresses).
 */
export function brokerOption(doc = 'the broker\'s host:port, or several separated by commas (the client uses whichever answers)'): Field<string> {
  return custom(doc, (raw) => {
    if (raw === undefined || raw === '') throw new Error('is required');
    if (typeof raw !== 'string') throw new Error(`must be a string, got ${typeof raw}`);
    parseBrokerAddresses(raw, '--broker');
    return raw;
  });
}

/**
 * A broker client authenticated by the cluster certificate in `tlsDir` (tls.crt, tls.key,
 * ca.crt, as `isthmus certs issue --cluster` writes them). The files are read at every
 * connection, so a renewed certificate is picked up without a restart.
 */
export function brokerClientFromDir(address: string, tlsDir: string, logger: Logger, extra: Partial<BrokerClientOptions> = {}): BrokerClient {
  return new BrokerClient({
    ...extra,
    address,
    credentials: async () => ({
      caPem: await readFile(join(tlsDir, 'ca.crt'), 'utf8'),
      certPem: await readFile(join(tlsDir, 'tls.crt'), 'utf8'),
      keyPem: await readFile(join(tlsDir, 'tls.key'), 'utf8'),
    }),
    logger,
  });
}
