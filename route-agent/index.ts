// The route agent's public face (see agent.ts; the contract with the gateway is contract.ts).
export { RouteAgent, cleanupNode, type RouteAgentConfig, type RouteAgentDeps, type ModeChoice } from './agent.ts';
export { chooseFilter, NftFilter, IptablesFilter, type PacketFilter } from './filter.ts';
export { RouteAgentMetrics } from './metrics.ts';
export { desiredRoutes, type AgentView, type Desired } from './desired.ts';
