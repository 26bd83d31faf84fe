// TLS to etcd (store.etcd.tls): the files read once when the store opens, and
// given to everything that talks to the members: the gRPC client (etcd3's
// credentials), the members' /health reads for etcd's clock (node:https) and
// `bootfarm status`. The configuration loader has checked them already
// (server/config/etcd-tls.ts); they are checked again here because they may have
// changed since, and a bad file must be named, not left to a failed handshake.
import http from 'node:http';
import https from 'node:https';
import type { EtcdTlsFiles } from '../config/etcd-tls.js';
import { readCertificates, readPrivateKey } from '../config/etcd-tls.js';
import { SetupError } from '../errors.js';
import { readFileSync } from 'node:fs';

export interface EtcdTls {
  /** Where they were read from (named in errors). */
  files: EtcdTlsFiles;
  /** The CA bundle that signed the members' server certificates. */
  ca: Buffer;
  /** This instance's client certificate (chain) and its key, for etcd's --client-cert-auth. */
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
}

/** Reads and checks the files; a SetupError names the key and the path. Undefined without a tls section. */
export function loadEtcdTls(files: EtcdTlsFiles | undefined): EtcdTls | undefined {
  if (!files) return undefined;
  const fail = (key: string, why: string) => new SetupError(`store.etcd.tls.${key}: ${why}`);
  const ca = readCertificates(files.ca);
  if (typeof ca === 'string') throw fail('ca', ca);
  const tls: EtcdTls = { files, ca: readFileSync(files.ca) };
  if (files.cert === undefined || files.key === undefined) return tls;
  const cert = readCertificates(files.cert);
  if (typeof cert === 'string') throw fail('cert', cert);
  const key = readPrivateKey(files.key);
  if (typeof key === 'string') throw fail('key', key);
  if (!cert[0]?.checkPrivateKey(key)) throw fail('key', `${files.key} is not the private key of ${files.cert}`);
  return { ...tls, cert: readFileSync(files.cert), key: readFileSync(files.key) };
}

/** etcd3's `credentials` option (gRPC createSsl); undefined for plain http. */
export function etcdCredentials(
  tls: EtcdTls | undefined,
): { rootCertificate: Buffer; privateKey?: Buffer; certChain?: Buffer } | undefined {
  if (!tls) return undefined;
  return tls.cert && tls.key ? { rootCertificate: tls.ca, privateKey: tls.key, certChain: tls.cert } : { rootCertificate: tls.ca };
}

/**
 * GETs `path` from an etcd member and resolves with the response's headers once
 * they arrive (the body, which we do not use, is read and dropped). https URLs
 * trust only `tls.ca`, not the system's CAs, and present the client certificate.
 * Bounded by `timeoutMs` (the whole exchange up to the headers).
 */
export function memberGet(
  endpoint: string,
  urlPath: string,
  timeoutMs: number,
  tls: EtcdTls | undefined,
): Promise<http.IncomingHttpHeaders> {
  const url = new URL(urlPath, endpoint);
  const signal = AbortSignal.timeout(timeoutMs);
  return new Promise((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage) => {
      // The deadline may abort the body after the headers: nothing waits on it then.
      res.on('error', () => undefined);
      res.resume();
      resolve(res.headers);
    };
    const req =
      url.protocol === 'https:'
        ? https.get(url, { signal, ca: tls?.ca, cert: tls?.cert, key: tls?.key, agent: false }, onResponse)
        : http.get(url, { signal, agent: false }, onResponse);
    req.on('error', (err: Error) =>
      reject(err.name === 'AbortError' ? new Error(`${url.origin}${urlPath}: no answer within ${timeoutMs} ms`) : err),
    );
  });
}

/**
 * The first line of an etcd call's error, with what a TLS failure means in
 * bootfarm's terms: gRPC reports a refused client certificate as the OpenSSL
 * alert it received ("sslv3 alert bad certificate ... SSL alert number 42"),
 * which names neither the side at fault nor the file to change.
 */
export function etcdErrorText(err: unknown, tls: EtcdTls | undefined): string {
  const text = ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';
  if (!tls) return text;
  const { ca, cert } = tls.files;
  if (/unable to verify|self[- ]signed certificate|unable to get (local )?issuer|certificate signature failure/i.test(text))
    return `the member's server certificate is not signed by the CA in store.etcd.tls.ca (${ca}): ${text}`;
  if (/does not match certificate's altnames|Hostname\/IP does not match/i.test(text))
    return `the member's server certificate does not name the host of its endpoint: ${text}`;
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)|alert number (42|46|48|116)\b/i.test(text))
    return cert === undefined
      ? `the member requires a client certificate (etcd --client-cert-auth): set store.etcd.tls.cert and store.etcd.tls.key: ${text}`
      : `the member refused the client certificate in store.etcd.tls.cert (${cert}; is it signed by the CA etcd's --trusted-ca-file names?): ${text}`;
  if (/certificate has expired|certificate is not yet valid/i.test(text)) return `a TLS certificate is out of its validity period: ${text}`;
  return text;
}
