import { stringify } from 'yaml';

/**
 * Serialise a value as YAML that YAML 1.1 readers (PyYAML in cloud-init, libyaml in netplan, Go yaml
 * in k3s) read back exactly: strings such as `no`, `on`, `0600` or `1.10` are quoted, long lines
 * (SSH keys) are never folded. Deterministic: key order is the object's insertion order.
 */
export function toYaml(value: unknown): string {
  return stringify(value, { version: '1.1', lineWidth: 0, minContentWidth: 0 });
}
