// The DHCP exchange of one boot on 0.0.0.0:68: DISCOVER until a usable OFFER (or a
// proxyDHCP offer plus an address offer), one REQUEST, then the ACK if it comes.
//
// What goes on the wire (Pi 4 defaults; --model 5 changes the FourCC, revision,
// DTB, kernel name and blksize):
// - DISCOVER from 0.0.0.0:68 to 255.255.255.255:67, options in the order a captured
//   Pi 4 sends them (rpi-eeprom#58: 322-byte payload, no padding): 53=1,
//   55=[1,3,43,60,66,67,128..135], 93=0, 94=UNDI 2.1, 97 = 00 "RPi4" rev macLow
//   serial, 60="PXEClient:Arch:00000:UNDI:002001", END. The BROADCAST flag is set
//   by default; captures show real Pi 4s sending flags 0, which --no-broadcast-flag
//   reproduces (see the socket notes below). Retransmitted every 4 s
//   (DHCP_REQ_TIMEOUT) until --dhcp-timeout (DHCP_TIMEOUT, default 45 s).
// - The OFFER must carry option 43 whose PXE menu (sub-option 9) contains
//   "Raspberry Pi Boot" (substring, as current EEPROMs match). The TFTP server is
//   option 66 (must be a dotted quad) if present, else option 54. Offers that do
//   not qualify are recorded and ignored, and the client keeps waiting, as a Pi
//   does. A proxyDHCP offer (yiaddr 0) carrying the boot options is combined with
//   a plain address offer from another server.
// - REQUEST: 53=3, 55, 93, 94, 97, 50, 54 and deliberately no option 60 (rpi-eeprom#82).
//   If no ACK arrives within 4 s the client proceeds with the OFFER's yiaddr, as
//   the Pi ROM does. A NAK is a failure.
//
// Sockets without an address (found by trying, Linux 6.x, Node 20):
// - Binding 0.0.0.0:68 with SO_BROADCAST receives broadcast replies fine, but
//   sending to 255.255.255.255 from an interface with no IPv4 address fails with
//   ENETUNREACH: there is no route. `ip route add 255.255.255.255/32 dev IFACE` is
//   enough; the kernel then sends from source 0.0.0.0 as a real DHCP client does.
// - After the OFFER/ACK the client adds yiaddr/prefix (prefix from option 1) to the
//   interface so TFTP has a source address, and a route to the TFTP server via
//   option 3 if the server is off-subnet. Everything the client added is removed
//   at the end unless --keep-address. --no-ip-config skips all `ip` calls (you
//   configure the interface yourself; the TFTP socket then binds 0.0.0.0).
// - With --no-broadcast-flag a server may unicast the OFFER to yiaddr at chaddr
//   (dnsmasq does, by writing an ARP entry). Such a packet is dropped by a host
//   that does not own yiaddr, and Node has no packet sockets, so during DHCP the
//   client also adds `local 0.0.0.0/0 dev lo table local` ("AnyIP": every address
//   is local, so the unicast reaches the socket on 0.0.0.0:68) plus a more
//   specific `broadcast 255.255.255.255 dev IFACE table local` so the DISCOVER
//   still leaves by IFACE, and sets net.ipv4.icmp_echo_ignore_all=1 in the
//   namespace so dnsmasq's pre-offer ping does not see every address as taken
//   (and arp_ignore=1 so the interface answers ARP only for its own address), and
//   accept_local=1 on IFACE because the server's own address now looks local and
//   its packets would otherwise be dropped as martians.
//   All of that is undone before TFTP. Only use this mode in a namespace of its own.
import dgram, { type RemoteInfo } from 'node:dgram';
import { buildDiscover, buildRequest, DhcpType } from './dhcp-build.js';
import { judgeOffer, summariseReply, type OfferSummary, type OfferVerdict } from './dhcp-offer.js';
import { parseDhcpMessage, type DhcpMessage } from './dhcp-parse.js';
import type { PiIdentity, PiModel } from './model.js';
import { Aborted } from './options.js';
import type { PiBootReport } from './report.js';
import { bindSocket, closeSocket } from './udp.js';

interface DhcpPhaseResult {
  offer: OfferSummary;
  proxyOffer: OfferSummary | undefined;
  tftpServer: string;
  tftpServerSource: 'option66' | 'option54';
  serverId: string;
}

interface DhcpPhaseParams {
  id: PiIdentity;
  xid: number;
  broadcastFlag: boolean;
  match: string;
  lenient: boolean;
  timeoutMs: number;
  retryMs: number;
  report: PiBootReport;
  log: (l: string) => void;
  warn: (w: string) => void;
  signal: AbortSignal | undefined;
  model: PiModel;
  /**
   * false: take the OFFER's address without a REQUEST, as the Pi 3 ROM and its
   * bootcode.bin do (boot-net.adoc, "DHCP request/reply/ack sequence not correctly
   * implemented"; raspberrypi/firmware#1699).
   */
  sendRequest: boolean;
  /**
   * false: HTTP boot (BOOT_ORDER nibble 7). The EEPROM wants only an address from
   * DHCP and goes to HTTP_HOST itself (boot-http.adoc), so any address offer will
   * do: no option 43 menu, no TFTP server.
   */
  needBootOptions?: boolean;
}

export async function dhcpPhase(p: DhcpPhaseParams): Promise<DhcpPhaseResult | undefined> {
  const sock = dgram.createSocket({ type: 'udp4' });
  try {
    await bindSocket(sock, 68, '0.0.0.0');
  } catch (e) {
    p.report.failures.push(`cannot bind 0.0.0.0:68: ${(e as Error).message}`);
    closeSocket(sock);
    return undefined;
  }
  sock.setBroadcast(true);
  const started = Date.now();
  const macHex = p.id.mac.toString('hex');
  const discoverFirst = buildDiscover(p.id, p.xid, { broadcast: p.broadcastFlag, secs: 0 });
  p.report.dhcp.discoverHex = discoverFirst.toString('hex');

  type Incoming = { msg: DhcpMessage; raw: Buffer; from: string };
  const queue: Incoming[] = [];
  let wake: (() => void) | undefined;
  let socketError: Error | undefined;
  sock.on('message', (raw: Buffer, rinfo: RemoteInfo) => {
    const parsed = parseDhcpMessage(raw);
    const from = `${rinfo.address}:${rinfo.port}`;
    if (!parsed.ok) {
      if (raw.length >= 8 && raw.readUInt32BE(4) === p.xid) p.warn(`unparseable DHCP reply with our xid from ${from}: ${parsed.reason}`);
      return;
    }
    const m = parsed.message;
    if (m.op !== 2 || m.xid !== p.xid) return;
    if (m.chaddr.toString('hex') !== macHex) {
      p.warn(`reply with our xid from ${from} but chaddr ${m.chaddr.toString('hex')}; ignored`);
      return;
    }
    queue.push({ msg: m, raw: Buffer.from(raw), from });
    wake?.();
  });
  sock.on('error', (err) => {
    socketError = err;
    wake?.();
  });

  const next = (deadline: number): Promise<Incoming | undefined> => {
    const ready = queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => {
      const done = (value: Incoming | undefined) => {
        clearTimeout(t);
        p.signal?.removeEventListener('abort', onAbort);
        wake = undefined;
        resolve(value);
      };
      const t = setTimeout(() => done(undefined), Math.max(0, deadline - Date.now()));
      const onAbort = () => done(undefined);
      p.signal?.addEventListener('abort', onAbort, { once: true });
      wake = () => done(queue.shift());
    });
  };
  const sendTo67 = (buf: Buffer) =>
    new Promise<void>((resolve, reject) => {
      sock.send(buf, 67, '255.255.255.255', (err) => (err ? reject(err) : resolve()));
    });

  try {
    // SELECTING: DISCOVER every retryMs until an acceptable offer or the deadline.
    const deadline = started + p.timeoutMs;
    let nextSend = Date.now();
    type Judged = Incoming & { s: OfferSummary; v: OfferVerdict };
    let chosen: { address: Judged; boot: Judged; verdict: OfferVerdict } | undefined;
    const allOffers: Judged[] = [];
    const addressOffers: Judged[] = [];
    const whyNot = (o: Judged): string[] => {
      if (o.s.yiaddr !== '0.0.0.0') return o.v.reasons;
      return o.v.bootUsable
        ? ['proxyDHCP offer (yiaddr 0.0.0.0) with the boot options; no address offer from another server to go with it']
        : ['proxyDHCP offer (yiaddr 0.0.0.0)', ...o.v.reasons];
    };
    const proxyOffers: Judged[] = [];
    while (!chosen) {
      if (p.signal?.aborted) throw new Aborted('aborted');
      if (socketError) throw new Error(`DHCP socket: ${socketError.message}`);
      const now = Date.now();
      if (now >= deadline) break;
      if (now >= nextSend) {
        const secs = Math.floor((now - started) / 1000);
        const pkt = p.report.dhcp.discoversSent === 0 ? discoverFirst : buildDiscover(p.id, p.xid, { broadcast: p.broadcastFlag, secs });
        try {
          await sendTo67(pkt);
        } catch (e) {
          throw new Error(
            `cannot send DHCPDISCOVER to 255.255.255.255:67: ${(e as Error).message} (no route for the limited broadcast? see the file header)`,
          );
        }
        p.report.dhcp.discoversSent++;
        p.log(`DHCPDISCOVER #${p.report.dhcp.discoversSent} xid ${p.report.dhcp.xid} (flags ${p.broadcastFlag ? '0x8000' : '0x0000'})`);
        nextSend = now + p.retryMs;
      }
      const got = await next(Math.min(nextSend, deadline));
      if (!got) continue;
      const s = summariseReply(got.msg, got.raw, got.from, p.match);
      if (s.messageType !== DhcpType.OFFER) continue; // a late ACK/NAK of someone else's exchange
      const v = judgeOffer(s, { lenientOption43: p.lenient, match: p.match });
      p.log(
        `DHCPOFFER from ${got.from}: yiaddr ${s.yiaddr} siaddr ${s.siaddr} server-id ${s.serverId ?? '-'} opt66 ${s.option66 ?? '-'} opt43 ${s.option43Matched ? 'matches' : 'does not match'}`,
      );
      if (got.msg.padBeforeEnd)
        p.warn(`OFFER from ${got.from} has Pad options before End (early Pi 4 EEPROMs dropped such replies, rpi-eeprom#82)`);
      for (const w of v.warnings) p.warn(`OFFER from ${got.from}: ${w}`);
      const entry = { ...got, s, v };
      allOffers.push(entry);
      if (v.addressUsable && (v.bootUsable || p.needBootOptions === false)) {
        chosen = { address: entry, boot: entry, verdict: v };
        break;
      }
      const proxy = s.yiaddr === '0.0.0.0';
      if (v.addressUsable) addressOffers.push(entry);
      else if (proxy && v.bootUsable) proxyOffers.push(entry);
      const a = addressOffers[0];
      const b = proxyOffers[0];
      if (a && b) {
        if (p.model === 4)
          p.warn('booting with a proxyDHCP offer: Pi 4 proxy support is unverified (rpi-eeprom#60, #103); prefer full DHCP for Pi 4');
        chosen = { address: a, boot: b, verdict: b.v };
      } else {
        p.log(`  not usable yet: ${whyNot(entry).join('; ')}`);
      }
    }
    // Offers that were neither the address nor the boot source, once per server and reasons.
    for (const o of allOffers) {
      // The chosen servers' own offers (including repeats for retransmitted DISCOVERs) were used.
      if (chosen && (o.from === chosen.address.from || o.from === chosen.boot.from)) continue;
      const why = whyNot(o);
      const same = p.report.dhcp.offersIgnored.find((x) => x.from === o.from && x.reasons.join('|') === why.join('|'));
      if (same) same.count++;
      else p.report.dhcp.offersIgnored.push({ from: o.from, reasons: why, count: 1 });
    }
    if (!chosen) {
      const seen = p.report.dhcp.offersIgnored;
      p.report.failures.push(
        seen.length === 0
          ? `no DHCPOFFER within ${p.timeoutMs} ms (${p.report.dhcp.discoversSent} DISCOVERs sent)`
          : `no usable DHCPOFFER within ${p.timeoutMs} ms; offers seen: ${seen.map((o) => `${o.from} (x${o.count}): ${o.reasons.join('; ')}`).join(' | ')}`,
      );
      return undefined;
    }
    p.report.dhcp.offer = chosen.address.s;
    if (chosen.boot !== chosen.address) p.report.dhcp.proxyOffer = chosen.boot.s;
    const serverId = chosen.address.s.serverId as string;
    const result: DhcpPhaseResult = {
      offer: chosen.address.s,
      proxyOffer: p.report.dhcp.proxyOffer,
      // An HTTP boot's offer may name no TFTP server: option 54 then, never used for files.
      tftpServer: chosen.verdict.tftpServer ?? serverId,
      tftpServerSource: chosen.verdict.tftpServerSource ?? 'option54',
      serverId,
    };

    if (!p.sendRequest) {
      p.log(`no DHCPREQUEST: using the OFFER's ${chosen.address.s.yiaddr} as the Pi 3 ROM does`);
      return result;
    }
    // REQUESTING: one REQUEST, then up to retryMs for the ACK; the Pi proceeds without one.
    const request = buildRequest(p.id, p.xid, chosen.address.s.yiaddr, serverId, {
      broadcast: p.broadcastFlag,
      secs: Math.floor((Date.now() - started) / 1000),
    });
    p.report.dhcp.requestHex = request.toString('hex');
    await sendTo67(request);
    p.log(`DHCPREQUEST for ${chosen.address.s.yiaddr} to server-id ${serverId} (no option 60)`);
    const ackDeadline = Date.now() + p.retryMs;
    for (;;) {
      if (p.signal?.aborted) throw new Aborted('aborted');
      const got = await next(ackDeadline);
      if (!got) break;
      const s = summariseReply(got.msg, got.raw, got.from, p.match);
      if (s.messageType === DhcpType.NAK) {
        p.report.dhcp.nak = s;
        const text = got.msg.options.get(56)?.toString('latin1');
        p.report.failures.push(`DHCPNAK from ${got.from} for ${chosen.address.s.yiaddr}${text ? `: "${text}"` : ''}`);
        return undefined;
      }
      if (s.messageType !== DhcpType.ACK) continue;
      if (s.serverId !== undefined && s.serverId !== serverId) {
        p.warn(`ACK from server-id ${s.serverId}, but the REQUEST selected ${serverId}; ignored`);
        continue;
      }
      p.report.dhcp.ackReceived = true;
      p.report.dhcp.ack = s;
      p.log(`DHCPACK from ${got.from}: yiaddr ${s.yiaddr} mask ${s.subnetMask ?? '-'} lease ${s.leaseTime ?? '-'} s`);
      if (got.msg.padBeforeEnd) p.warn(`ACK from ${got.from} has Pad options before End (rpi-eeprom#82)`);
      if (s.yiaddr !== chosen.address.s.yiaddr)
        p.warn(`ACK yiaddr ${s.yiaddr} differs from the OFFER's ${chosen.address.s.yiaddr}; using the ACK's`);
      if (!s.serverId) p.warn('ACK has no option 54 (server identifier), a MUST');
      if (s.leaseTime === undefined) p.warn('ACK has no option 51 (lease time), a MUST in an ACK to a REQUEST');
      break;
    }
    if (!p.report.dhcp.ackReceived) p.warn(`no DHCPACK within ${p.retryMs} ms; proceeding with the OFFER's yiaddr as the Pi does`);
    return result;
  } finally {
    closeSocket(sock);
  }
}
