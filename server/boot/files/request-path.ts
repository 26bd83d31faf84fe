// Request paths of TFTP and HTTP alike, in the order dnsmasq and tftp-hpa check them: backslashes to slashes,
// leading slashes dropped, '.', '..', empty components and control characters
// refused. Symlinks are resolved and re-checked by the file resolvers.

export type PathResult = { ok: true; path: string } | { ok: false; reason: string };

export function normalizeRequestPath(raw: string): PathResult {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) return { ok: false, reason: 'control character in path' };
  const slashed = raw.replace(/\\/g, '/').replace(/^\/+/, '');
  const parts = slashed.split('/').filter((p) => p.length > 0);
  if (parts.length === 0) return { ok: false, reason: 'empty path' };
  if (parts.some((p) => p === '..' || p === '.')) return { ok: false, reason: "'.' or '..' in path" };
  return { ok: true, path: parts.join('/') };
}
