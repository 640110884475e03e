/**
 * Parses an OpenSSH public key line (`type base64 [comment]`) enough to reject garbage early:
 * the type must be known, the base64 must decode, and the blob must start with the same type name.
 */
const KNOWN_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);

export type SshKeyCheck = { ok: true; type: string; comment?: string } | { ok: false; reason: string };

export function checkSshPublicKey(line: string): SshKeyCheck {
  const parts = line.trim().split(/\s+/);
  const [type, data, ...comment] = parts;
  if (!type || !data) return { ok: false, reason: 'expected "<type> <base64> [comment]", e.g. "ssh-ed25519 AAAAC3Nza… you@host"' };
  if (type.includes('PRIVATE') || line.includes('-----BEGIN')) {
    return { ok: false, reason: 'this looks like a private key; put the public key (the .pub file) here' };
  }
  if (!KNOWN_TYPES.has(type)) return { ok: false, reason: `unknown key type "${type}" (expected one of ${[...KNOWN_TYPES].join(', ')})` };
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) return { ok: false, reason: 'the key data is not valid base64' };
  const blob = Buffer.from(data, 'base64');
  if (blob.length < 4) return { ok: false, reason: 'the key data is too short' };
  const len = blob.readUInt32BE(0);
  const inner = blob.subarray(4, 4 + len).toString('latin1');
  if (inner !== type) return { ok: false, reason: `the key data says "${inner.slice(0, 40)}" but the line says "${type}"` };
  if (type === 'ssh-ed25519' && blob.length !== 51) return { ok: false, reason: 'an ed25519 key must hold 32 bytes of key data' };
  return comment.length ? { ok: true, type, comment: comment.join(' ') } : { ok: true, type };
}
