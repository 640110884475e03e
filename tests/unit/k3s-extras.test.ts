import { describe, expect, it } from 'vitest';
import { checkK3sExtras, flagName, INVENTORY_OWNED_K3S_KEYS, isK3sFlag } from '../../src/core/k3s/extras.js';
import { K3S_AGENT_FLAGS, K3S_SERVER_FLAGS } from '../../src/core/k3s/flags.js';

describe('k3s flag lists (data from k3s pkg/cli/cmds)', () => {
  it('hold the flags pi-image relies on, per role', () => {
    for (const f of ['token-file', 'server', 'node-name', 'node-ip', 'node-label', 'node-taint', 'data-dir', 'kubelet-arg']) {
      expect(K3S_AGENT_FLAGS).toContain(f);
      expect(K3S_SERVER_FLAGS).toContain(f);
    }
    for (const f of ['cluster-init', 'agent-token-file', 'tls-san', 'write-kubeconfig-mode', 'disable', 'kube-apiserver-arg']) {
      expect(K3S_SERVER_FLAGS).toContain(f);
      expect(K3S_AGENT_FLAGS).not.toContain(f);
    }
    expect(new Set(K3S_SERVER_FLAGS).size).toBe(K3S_SERVER_FLAGS.length);
  });
});

describe('checkK3sExtras', () => {
  it('accepts flags of the role, with the append suffix', () => {
    expect(checkK3sExtras('agent', { 'kubelet-arg': ['a=b'], 'node-label+': ['x=y'], 'data-dir': '/x' }, 'n is an agent')).toEqual([]);
    expect(checkK3sExtras('server', { disable: ['traefik'], 'kube-apiserver-arg+': ['a=b'] }, 'n is a server')).toEqual([]);
    expect(flagName('node-label+')).toBe('node-label');
    expect(isK3sFlag('agent', 'disable')).toBe(false);
  });

  it('refuses a server flag on an agent and a typo, with a suggestion', () => {
    const f = checkK3sExtras('agent', { disable: ['traefik'], 'node-lable': ['a=b'] }, 'pi-cluster-2 is an agent');
    expect(f).toHaveLength(2);
    expect(f.every((x) => x.severity === 'error')).toBe(true);
    expect(f[0]!.message).toContain('"disable" is a k3s server flag, not an agent flag (pi-cluster-2 is an agent)');
    expect(f[0]!.message).toContain('flag provided but not defined');
    expect(f[1]!.message).toContain('did you mean "node-label"?');
  });

  it('warns on a server (k3s server skips unknown keys) and refuses inventory-owned keys on both roles', () => {
    const s = checkK3sExtras('server', { 'tls-sna': ['x'] }, 's');
    expect(s).toEqual([{ key: 'tls-sna', severity: 'warning', message: expect.stringContaining('did you mean "tls-san"?') }]);
    for (const role of ['server', 'agent'] as const) {
      for (const key of Object.keys(INVENTORY_OWNED_K3S_KEYS)) {
        const [finding] = checkK3sExtras(role, { [key]: 'x' }, 'n');
        expect(finding?.severity, `${role} ${key}`).toBe('error');
        expect(finding?.message).toContain('set by pi-image from the inventory');
      }
    }
  });
});
