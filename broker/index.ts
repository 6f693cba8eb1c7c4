// The public face of broker/: the server (run by `isthmus broker`). The client, cache,
// endpoint keeper and record types live in core/broker-api/ so every part can use them;
// they are re-exported here for the broker's own tests and tools.
export * from '../core/broker-api/index.ts';
export { BrokerServer, type BrokerServerOptions } from './server.ts';
export { PREFIX as ETCD_PREFIX, etcdKey, parseEtcdKey } from './keys.ts';
export { DEFAULT_GLOBAL_CIDR_POOL } from './store.ts';
export { DEFAULT_QUOTAS, parseQuotas, type QuotaLimits } from './quota.ts';
export { DEFAULT_CONNECTION_LIMITS, parseConnectionLimits, type ConnectionLimits } from './guard.ts';
export { REVOKED_DIR, normalizeSerial, revoke, revokedKey } from './revocation.ts';
