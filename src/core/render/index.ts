/** Rendering: inventory + secrets + templates → per-node files. Pure and deterministic. */
export { transformCmdline, netbootCmdline, nocloudToken, type NfsRoot } from './cmdline.js';
export { k3sConfig, k3sDataDir, nodePassword, serverHost, RESERVED_K3S_KEYS } from './k3s.js';
export { renderNetworkConfig, WIFI_INTERFACE } from './network.js';
export { renderNode, renderNodeFiles, PI_OS_DEFAULT_GROUPS, type RenderOptions } from './node.js';
export { NODE_PATHS, JOIN_UNIT_NAME } from './paths.js';
export { compileTemplates, type Templates, type CompiledTemplates } from './templates.js';
export { shq } from './shell.js';
export { toYaml } from './yaml.js';
