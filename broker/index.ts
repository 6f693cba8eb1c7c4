// The public face of broker/: the server (run by `isthmus broker`), the client every
// part uses, its local cache, the endpoint keeper, and the record types.
export * from './types.ts';
export { BrokerServer, type BrokerServerOptions } from './server.ts';
export { BrokerClient, type BrokerClientOptions, type TlsMaterial, type PublishEndpointResult, type WatchHandlers, type ClusterInput, type EndpointInput, type ExportInput } from './client.ts';
export { BrokerCache, type Change, type ChangeType, type BrokerCacheOptions, type CacheSource } from './cache.ts';
export { EndpointKeeper, type EndpointKeeperOptions } from './endpoint.ts';
export { PREFIX as ETCD_PREFIX, etcdKey, parseEtcdKey } from './keys.ts';
export { PROTO_PATH, SERVICE_NAME } from './proto.ts';
export { MetricsServer } from './metrics.ts';
