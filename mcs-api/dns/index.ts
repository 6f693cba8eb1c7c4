// The public face of the clusterset.local DNS server.
export { answer, validName, TTL, OUR_UDP_SIZE, type AnswerOptions } from './answer.ts';
export { ZoneIndex, SCHEMA_VERSION, type DnsService } from './zone.ts';
export { DnsServer, parseListen, type DnsServerOptions } from './server.ts';
export { ZoneKeeper } from './keeper.ts';
export { DnsMetrics } from './metrics.ts';
