/**
 * How a use case reaches a node over SSH (kubeconfig fetches the admin kubeconfig, status reads the
 * first-boot status): one option shape, declared once for the commands by `sshTargetOptions`.
 */
export interface SshTargetOptions {
  /** private key file (default: $PI_IMAGE_SSH_KEY, then ~/.ssh/id_ed25519); ssh-agent is tried first */
  identity?: string;
  /** known_hosts file the host key is pinned in (default: ~/.config/pi-image/known_hosts) */
  knownHosts?: string;
  /** address to SSH to (default: from the inventory) */
  host?: string;
  sshPort: number;
  /** default: the inventory's admin user */
  user?: string;
  /** deadline for connecting, logging in and reading */
  timeoutMs: number;
  /** asks for a key passphrase without echo; absent off a terminal */
  askPassphrase?: (question: string) => Promise<string>;
}
