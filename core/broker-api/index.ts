// The broker's API as every part uses it: record types, the gRPC client, its local cache
// and the endpoint keeper. The server lives in broker/; parts import this, never broker/.
// (A separate entry from core/index.ts: it loads gRPC and the proto.)
export * from './types.ts';
export { BrokerClient, type BrokerClientOptions, type TlsMaterial, type PublishEndpointResult, type WatchHandlers, type ClusterInput, type EndpointInput, type ExportInput } from './client.ts';
export { brokerTargets, formatBrokerAddress, parseBrokerAddresses, type BrokerAddress } from './address.ts';
export { BrokerCache, type Change, type ChangeType, type BrokerCacheOptions, type CacheSource } from './cache.ts';
export { EndpointKeeper, type EndpointKeeperOptions } from './endpoint.ts';
export { PROTO_PATH, SERVICE_NAME } from './proto.ts';
export * from './policy.ts';
export { IDENTITY_LIMITS, MAX_POLICY_SPEC_BYTES, MAX_POLICY_STATUS_MESSAGE_BYTES, validateIdentitySet, validatePolicyRecord, validatePolicyStatus } from './identity.ts';
export {
  callJoinApi, parseJoinToken, MAX_GATEWAYS_PER_REQUEST, TOKEN_TTL_DEFAULT_S, TOKEN_TTL_MAX_S, type GatewayCertificatesRequest, type GatewayCertificatesResponse,
  type JoinCallOptions, type JoinRequest, type JoinResponse, type MintTokenRequest, type MintTokenResponse,
} from './join.ts';
