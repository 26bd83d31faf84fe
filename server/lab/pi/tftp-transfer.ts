// The TFTP transfer engine: one RRQ on one socket, as the EEPROM reads a file.
// Lock-step transfer (no windowsize), block numbers wrap 65535 -> 0, ACK
// retransmitted after 1 s of silence (5 times at most), duplicate DATA re-ACKed,
// packets from a foreign address/port answered with ERROR 5 and otherwise ignored,
// received length checked against the OACK tsize, per-file limit 30 s
// (TFTP_FILE_TIMEOUT) after which the client sends "Early terminate".
import dgram, { type RemoteInfo } from 'node:dgram';
import { createHash } from 'node:crypto';
import type { FileOutcome, TftpFileReport } from './report.js';
import { buildAck, buildError, buildRrq, checkOack, parseTftpPacket, TftpOp } from './tftp-packets.js';
import { bindSocket, closeSocket } from './udp.js';

interface TransferParams {
  server: string;
  port: number;
  localAddress: string;
  path: string;
  /** Options of the RRQ: the EEPROM's `tsize 0 blksize N`, bootcode.bin's `tsize 0`, or none (the Pi 3 ROM). */
  options: 'tsize+blksize' | 'tsize' | 'none';
  blksize: number;
  probe: boolean;
  retransmitMs: number;
  maxRetries: number;
  fileTimeoutMs: number;
  signal: AbortSignal | undefined;
}

/** What one transfer measured: the file report's wire fields, plus the bytes and the socket's end. */
type TransferResult = Omit<TftpFileReport, 'path' | 'name' | 'role' | 'mode' | 'required' | 'savedTo'> & {
  data: Buffer | undefined;
  warnings: string[];
  /** Resolves when the socket is closed (after dallying for a retransmitted last DATA). */
  closed: Promise<void>;
};

export async function tftpTransfer(p: TransferParams): Promise<TransferResult> {
  const started = Date.now();
  const sock = dgram.createSocket({ type: 'udp4' });
  const requestOptions: Array<[string, string]> =
    p.options === 'none'
      ? []
      : p.options === 'tsize'
        ? [['tsize', '0']]
        : [
            ['tsize', '0'],
            ['blksize', String(p.blksize)],
          ];
  const rrq = buildRrq(p.path, requestOptions);
  const warnings: string[] = [];
  let closedResolve: () => void = () => {};
  const closed = new Promise<void>((r) => {
    closedResolve = r;
  });
  sock.on('close', () => closedResolve());

  try {
    await bindSocket(sock, 0, p.localAddress);
  } catch (e) {
    closeSocket(sock);
    return {
      outcome: 'error',
      data: undefined,
      bytes: 0,
      sha256: undefined,
      tsize: undefined,
      blksize: undefined,
      blocks: 0,
      rollovers: 0,
      durationMs: 0,
      serverPort: undefined,
      errorMessage: `cannot bind a TFTP socket on ${p.localAddress}: ${(e as Error).message}`,
      retransmits: 0,
      duplicateData: 0,
      strayPackets: 0,
      warnings,
      closed,
    };
  }

  return new Promise<TransferResult>((resolve) => {
    type State = 'await-first' | 'await-data' | 'data' | 'done';
    let state: State = 'await-first';
    let tid: number | undefined;
    let blksize: number | undefined;
    let tsize: number | undefined;
    let expected = 1;
    let lastAcked = -1;
    let blocks = 0;
    let rollovers = 0;
    let bytes = 0;
    let retries = 0;
    let retransmits = 0;
    let duplicateData = 0;
    let strayPackets = 0;
    let outOfOrder = 0;
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    let lastSent: Buffer = rrq;
    let lastSentPort = p.port;

    const send = (buf: Buffer, port: number) => {
      lastSent = buf;
      lastSentPort = port;
      sock.send(buf, port, p.server);
    };

    /**
     * Ends the transfer. `last` is a final packet for the server (ERROR 0/4/5/8): the
     * socket is closed only from its send callback, because dgram sends are queued
     * and a close right after send() silently drops the datagram.
     */
    const finish = (outcome: FileOutcome, extra: { errorCode?: number; errorMessage?: string; dally?: boolean; last?: Buffer } = {}) => {
      if (state === 'done') return;
      state = 'done';
      clearTimeout(timer);
      clearTimeout(fileTimer);
      p.signal?.removeEventListener('abort', onAbort);
      const data = outcome === 'ok' ? Buffer.concat(chunks, bytes) : undefined;
      if (extra.last && tid !== undefined) {
        sock.send(extra.last, tid, p.server, () => closeSocket(sock));
      } else if (extra.dally) {
        // RFC 1350 §6: the host sending the final ACK should wait in case the final
        // DATA is retransmitted (our ACK lost). Done in the background.
        const dallyTimer = setTimeout(() => closeSocket(sock), p.retransmitMs);
        dallyTimer.unref();
      } else {
        closeSocket(sock);
      }
      resolve({
        outcome,
        data,
        bytes,
        sha256: outcome === 'ok' ? hash.digest('hex') : undefined,
        tsize,
        blksize,
        blocks,
        rollovers,
        durationMs: Date.now() - started,
        serverPort: tid,
        errorCode: extra.errorCode,
        errorMessage: extra.errorMessage,
        retransmits,
        duplicateData,
        strayPackets,
        warnings,
        closed,
      });
    };

    const abortWith = (code: number, message: string, reason: string) => {
      finish('error', { errorMessage: reason, last: buildError(code, message) });
    };

    const onTimeout = () => {
      if (state === 'done') return;
      if (retries >= p.maxRetries) {
        const waiting =
          state === 'await-first'
            ? 'a reply to the RRQ'
            : state === 'await-data'
              ? 'DATA 1 after ACKing the OACK'
              : `DATA block ${expected}`;
        finish('error', { errorMessage: `timed out waiting for ${waiting} (${p.maxRetries} retransmissions, ${p.retransmitMs} ms apart)` });
        return;
      }
      retries++;
      retransmits++;
      sock.send(lastSent, lastSentPort, p.server);
      timer = setTimeout(onTimeout, p.retransmitMs);
    };
    let timer = setTimeout(onTimeout, p.retransmitMs);
    const fileTimer =
      p.fileTimeoutMs > 0
        ? setTimeout(() => {
            finish('error', {
              errorMessage: `not complete within TFTP_FILE_TIMEOUT ${p.fileTimeoutMs} ms (${bytes} bytes received); sent "Early terminate"`,
              last: buildError(0, 'Early terminate'),
            });
          }, p.fileTimeoutMs)
        : undefined;
    const onAbort = () => finish('error', { errorMessage: 'aborted', last: buildError(0, 'Early terminate') });
    p.signal?.addEventListener('abort', onAbort);

    const progress = () => {
      retries = 0;
      timer.refresh();
    };

    const completeIfShort = (len: number) => {
      if (len >= (blksize ?? 512)) return;
      if (tsize !== undefined && bytes !== tsize) {
        finish('error', { errorMessage: `received ${bytes} bytes but the OACK announced tsize ${tsize}`, dally: true });
        return;
      }
      finish('ok', { dally: true });
    };

    sock.on('error', (err) => finish('error', { errorMessage: `socket error: ${err.message}` }));

    sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
      if (state === 'done') {
        // Dallying: re-ACK a retransmitted final DATA.
        if (
          rinfo.address === p.server &&
          rinfo.port === tid &&
          msg.length >= 4 &&
          msg.readUInt16BE(0) === TftpOp.DATA &&
          msg.readUInt16BE(2) === lastAcked
        ) {
          sock.send(buildAck(lastAcked), rinfo.port, rinfo.address);
        }
        return;
      }
      if (rinfo.address !== p.server || (tid !== undefined && rinfo.port !== tid)) {
        // RFC 1350 §4: a packet from a foreign TID gets ERROR 5; the transfer goes on.
        strayPackets++;
        if (strayPackets <= 3)
          warnings.push(`packet from ${rinfo.address}:${rinfo.port} while talking to ${p.server}:${tid ?? p.port}: answered ERROR 5`);
        sock.send(buildError(5, 'Unknown transfer ID'), rinfo.port, rinfo.address);
        return;
      }
      const pkt = parseTftpPacket(msg);
      if (pkt.op === 'invalid') {
        tid ??= rinfo.port;
        abortWith(4, 'Illegal TFTP operation', `malformed packet from the server: ${pkt.reason} (${msg.subarray(0, 32).toString('hex')})`);
        return;
      }
      if (tid === undefined) {
        tid = rinfo.port;
        if (tid === p.port) warnings.push(`server answered from port ${p.port} itself (single-port mode; RFC 1350 expects a new TID)`);
      }
      switch (pkt.op) {
        case 'ERROR': {
          if (state === 'await-first' && pkt.code === 1) {
            finish('not-found', { errorCode: pkt.code, errorMessage: pkt.message });
          } else {
            finish('error', {
              errorCode: pkt.code,
              errorMessage: `server sent ERROR ${pkt.code} "${pkt.message}"${state === 'await-first' ? '' : ` after ${bytes} bytes`}`,
            });
          }
          return;
        }
        case 'OACK': {
          if (state === 'await-data') {
            progress();
            send(buildAck(0), tid);
            return;
          } // our ACK 0 was lost
          if (state !== 'await-first') {
            warnings.push('OACK repeated in the middle of the transfer; ignored');
            return;
          }
          if (requestOptions.length === 0) {
            abortWith(8, 'Option negotiation failed', 'OACK to an RRQ that carried no options (RFC 2347: the server must not send one)');
            return;
          }
          const v = checkOack(requestOptions, pkt.options);
          if (!v.ok) {
            abortWith(8, 'Option negotiation failed', v.reason);
            return;
          }
          blksize = v.blksize;
          tsize = v.tsize;
          if (tsize === undefined && p.options !== 'none') warnings.push('OACK has no tsize although the Pi asked for it');
          if (p.probe) {
            finish('probe-aborted', { last: buildError(0, 'Early terminate') });
            return;
          }
          state = 'await-data';
          progress();
          send(buildAck(0), tid);
          return;
        }
        case 'DATA': {
          if (state === 'await-first') {
            // RFC 2347: a server that accepts no option skips the OACK.
            if (requestOptions.length > 0) warnings.push('server ignored tsize/blksize (no OACK): 512-byte blocks, no size check');
            blksize = 512;
            if (p.probe) {
              finish('probe-aborted', { last: buildError(0, 'Early terminate') });
              return;
            }
            state = 'data';
          }
          if (state === 'await-data') state = 'data';
          if (pkt.block === expected) {
            const size = blksize ?? 512;
            if (pkt.data.length > size) {
              abortWith(4, 'Illegal TFTP operation', `DATA block ${pkt.block} carries ${pkt.data.length} bytes, more than blksize ${size}`);
              return;
            }
            if (tsize !== undefined && bytes + pkt.data.length > tsize) {
              abortWith(
                4,
                'Illegal TFTP operation',
                `DATA runs past the announced tsize ${tsize} (block ${pkt.block}, ${bytes + pkt.data.length} bytes)`,
              );
              return;
            }
            chunks.push(Buffer.from(pkt.data));
            hash.update(pkt.data);
            bytes += pkt.data.length;
            blocks++;
            if (pkt.block === 0xffff) rollovers++;
            lastAcked = pkt.block;
            expected = (pkt.block + 1) & 0xffff;
            progress();
            send(buildAck(pkt.block), tid);
            completeIfShort(pkt.data.length);
          } else if (expected === 0 && pkt.block === 1 && rollovers > 0) {
            abortWith(
              4,
              'Illegal TFTP operation',
              'server wrapped the block number 65535 -> 1; the Pi (and dnsmasq, iPXE) expect 65535 -> 0 (rpi-eeprom#754)',
            );
          } else if (pkt.block === lastAcked) {
            // Our ACK was lost (or the server retransmitted early): re-ACK, RFC 1350.
            duplicateData++;
            sock.send(buildAck(lastAcked), tid, p.server);
          } else {
            outOfOrder++;
            if (outOfOrder <= 3) warnings.push(`DATA block ${pkt.block} while expecting ${expected}; ignored`);
          }
          return;
        }
        default:
          abortWith(4, 'Illegal TFTP operation', `server sent ${pkt.op} during a read`);
      }
    });

    send(rrq, p.port);
  });
}
