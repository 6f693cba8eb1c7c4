import { createLogger, str, validateConfig } from '../core/index.ts';
import { brokerClientFromDir, brokerOption } from './broker-client.ts';
import { optionRecord, parseArgs, usageError } from './args.ts';
import type { Command } from './command.ts';

const USAGE = `isthmus leave --cluster ID --broker ADDR --broker-tls-dir DIR

  Takes this cluster out of the clusterset: the broker deletes its Cluster, Endpoint
  and Export records, and every other cluster's gateway removes its cable to it.
  Stop this cluster's gateways first, or they publish their Endpoint again and fail.

  --cluster ID          this cluster's id
  --broker ADDR         the broker, host:port (several separated by commas)
  --broker-tls-dir DIR  this cluster's broker certificate: tls.crt, tls.key, ca.crt`;

const schema = {
  cluster: str('this cluster\'s id'),
  broker: brokerOption(),
  brokerTlsDir: str('folder with this cluster\'s broker certificate'),
};

export const leaveCommand: Command = {
  name: 'leave',
  async run(argv) {
    const args = parseArgs(argv, new Set(['help']));
    if (args.options.has('help')) {
      process.stdout.write(`usage: ${USAGE}\n`);
      return 0;
    }
    if (args.positionals.length > 0) throw usageError(`unexpected argument "${args.positionals[0] ?? ''}"`, USAGE);
    const cfg = validateConfig(schema, optionRecord(args), 'leave options');
    const logger = createLogger({ component: 'cli', cluster: cfg.cluster });
    const broker = brokerClientFromDir(cfg.broker, cfg.brokerTlsDir, logger, { retryForMs: 10_000 });
    try {
      const r = await broker.unregisterCluster(cfg.cluster);
      process.stdout.write(r.existed
        ? `${cfg.cluster} left the clusterset (broker revision ${r.revision}); the other clusters remove their cables to it\n`
        : `${cfg.cluster} was not in the clusterset; nothing changed\n`);
      return 0;
    } finally {
      broker.close();
    }
  },
};
