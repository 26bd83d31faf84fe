// store.etcd.tls (docs/configuration.md "Shared state in etcd"): what `config
// check` (and every load) refuses about TLS to etcd. The files are read here, at
// load time, so a missing CA, a key that is not PEM or a certificate that is not
// its key's is named with its key and path, not found later by gRPC as a
// handshake that never completes. Called from server/config/load.ts parseConfig.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ConfigFile } from './schema.js';

type Problem<P> = (segments: Array<string | number>, message: string) => P;

const TLS = ['store', 'etcd', 'tls'] as const;

/** Where the files are, resolved against the configuration file's directory. */
export interface EtcdTlsFiles {
  ca: string;
  cert?: string | undefined;
  key?: string | undefined;
}

/** The PEM blocks of one type in a text (a CA file may hold several certificates: a bundle). */
function pemBlocks(text: string, type: string): string[] {
  const re = new RegExp(`-----BEGIN ${type}-----[\\s\\S]*?-----END ${type}-----`, 'g');
  return text.match(re) ?? [];
}

/** The file's text, or why it cannot be read (its errno). */
function readText(file: string): string | { why: string } {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    return { why: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
}

/** The certificates of a PEM file, or why not (unreadable, no CERTIFICATE block, a block that does not parse). */
export function readCertificates(file: string): X509Certificate[] | string {
  const text = readText(file);
  if (typeof text !== 'string') return text.why;
  const blocks = pemBlocks(text, 'CERTIFICATE');
  if (blocks.length === 0) return `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`;
  const certs: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block));
    } catch (err) {
      return `${file}: certificate ${i + 1} does not parse (${(err as Error).message})`;
    }
  }
  return certs;
}

/**
 * The private key of a PEM file, or why not. Like ssh with an identity file, a
 * key that group or others may read is refused: whoever reads it can act as this
 * instance towards etcd (claim and release any address, rewrite the registry).
 */
export function readPrivateKey(file: string): KeyObject | string {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st?.isFile() && (st.mode & 0o077) !== 0)
    return `${file} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: a private key must not be readable by group or others (chmod 600 ${file})`;
  const text = readText(file);
  if (typeof text !== 'string') return text.why;
  try {
    return createPrivateKey(text);
  } catch (err) {
    return `${file} is not a PEM private key (${(err as Error).message})`;
  }
}

export function resolveEtcdTls(tls: EtcdTlsFiles | undefined, configDir: string): EtcdTlsFiles | undefined {
  if (!tls) return undefined;
  const at = (p: string) => path.resolve(configDir, p);
  return { ca: at(tls.ca), cert: tls.cert === undefined ? undefined : at(tls.cert), key: tls.key === undefined ? undefined : at(tls.key) };
}

export function etcdTlsProblems<P>(cfg: ConfigFile, configDir: string, problem: Problem<P>): P[] {
  const etcd = cfg.store?.etcd;
  if (!etcd) return [];
  const out: P[] = [];
  // One member listed twice would count twice towards the majority that says
  // etcd's clock (the registry counts by member id since, but a verbatim repeat
  // is a mistake worth naming where it was made).
  const seen = new Set<string>();
  for (const [i, e] of etcd.endpoints.entries()) {
    if (seen.has(e))
      out.push(problem(['store', 'etcd', 'endpoints', i], `expected each member's endpoint once, got ${JSON.stringify(e)} a second time`));
    seen.add(e);
  }
  if (out.length > 0) return out;
  const secure = etcd.endpoints.map((e) => e.startsWith('https://'));
  const firstHttps = secure.indexOf(true);
  const firstHttp = secure.indexOf(false);
  // One scheme for all: gRPC is given one kind of credentials for every member.
  if (firstHttps >= 0 && firstHttp >= 0) {
    const odd = secure[0] ? firstHttp : firstHttps;
    out.push(
      problem(
        ['store', 'etcd', 'endpoints', odd],
        `expected every endpoint ${secure[0] ? 'https' : 'http'}:// like the first (one scheme for all members), got ${JSON.stringify(etcd.endpoints[odd])}`,
      ),
    );
    return out;
  }
  const tls = etcd.tls;
  if (firstHttps >= 0 && !tls) {
    out.push(
      problem(
        ['store', 'etcd', 'endpoints', firstHttps],
        "https endpoints need store.etcd.tls.ca (the CA that signed the members' server certificates)",
      ),
    );
    return out;
  }
  if (!tls) return out;
  if (firstHttp >= 0) {
    out.push(
      problem([...TLS], `expected https:// endpoints with a tls section, got ${JSON.stringify(etcd.endpoints[firstHttp])} (plain http)`),
    );
    return out;
  }
  const files = resolveEtcdTls(tls, configDir) as EtcdTlsFiles;
  const ca = readCertificates(files.ca);
  if (typeof ca === 'string') out.push(problem([...TLS, 'ca'], `expected a PEM file of CA certificates: ${ca}`));
  if ((files.cert === undefined) !== (files.key === undefined)) {
    const missing = files.cert === undefined ? 'cert' : 'key';
    out.push(
      problem(
        [...TLS, files.cert === undefined ? 'key' : 'cert'],
        `expected tls.cert and tls.key together (a client certificate and its private key), tls.${missing} is missing`,
      ),
    );
    return out;
  }
  if (files.cert === undefined || files.key === undefined) return out;
  const certs = readCertificates(files.cert);
  if (typeof certs === 'string') out.push(problem([...TLS, 'cert'], `expected a PEM client certificate: ${certs}`));
  const key = readPrivateKey(files.key);
  if (typeof key === 'string') out.push(problem([...TLS, 'key'], `expected a PEM private key: ${key}`));
  const leaf = typeof certs === 'string' ? undefined : certs[0];
  if (leaf && typeof key !== 'string' && !leaf.checkPrivateKey(key))
    out.push(problem([...TLS, 'key'], `expected the private key of ${files.cert}, got another key in ${files.key}`));
  return out;
}
