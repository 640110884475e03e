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

/**
 * The sample inventory's key: structurally valid (so the sample validates and renders), obviously
 * not anyone's key. `validate` warns (and `--strict` fails) while it, or any key that looks like a
 * placeholder, is present: an image baked with it lets nobody log in.
 */
export const SAMPLE_PLACEHOLDER_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPLACEHOLDER0REPLACE0WITH0YOUR0PUBLIC0KEY000 REPLACE-ME@example.invalid';

/** Key data of keys that shipped in earlier samples and docs (nobody holds their private halves for you). */
const KNOWN_SAMPLE_KEY_DATA = new Set(['AAAAC3NzaC1lZDI1NTE5AAAAIGuIB3qOVWsjCA/gMZzv/hWWOpSkE5AJnttbHisIo+4x']);

/** Why `line` looks like a placeholder rather than a real key; undefined for an ordinary key. */
export function placeholderKeyReason(line: string): string | undefined {
  const [, data = '', ...comment] = line.trim().split(/\s+/);
  if (KNOWN_SAMPLE_KEY_DATA.has(data)) return 'it is the key from an earlier pi-image sample';
  if (/PLACEHOLDER|REPLACE0?WITH/i.test(data)) return 'its key data spells PLACEHOLDER';
  const note = comment.join(' ');
  if (/placeholder|replace[-_ ]?me|change[-_ ]?me/i.test(note)) return `its comment says "${note}"`;
  const blob = /^[A-Za-z0-9+/]+={0,2}$/.test(data) ? Buffer.from(data, 'base64') : undefined;
  if (blob && blob.length > 19 && blob.subarray(19).every((b) => b === 0)) return 'its key data is all zeros';
  return undefined;
}
