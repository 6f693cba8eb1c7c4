import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/index.ts';
import { BrokerClient, type BrokerClientOptions } from '../core/broker-api/index.ts';

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
