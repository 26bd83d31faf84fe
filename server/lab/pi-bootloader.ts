// A scripted Raspberry Pi 3B+ ROM / Pi 4/5 EEPROM bootloader network client: the Pi's stand-in
// in tests and in the emulation lab (QEMU's raspi machines cannot network-boot).
// It speaks the Pi's DHCP and TFTP as the Raspberry Pi documentation (boot-net.adoc,
// eeprom-bootloader.adoc), the rpi-eeprom issue captures and RFC 1350/2347-2349
// describe them, checks everything the server sends, and fails
// loudly: exit 1 and a reason on stderr when a required file does not arrive
// intact or the server breaks the protocol.
//
// CLI (root, inside a network namespace whose interface has no IPv4 address yet):
//   node --import tsx server/lab/pi-bootloader.ts --iface eth0 --mac dc:a6:32:01:02:03 \
//     --serial 1234abcd [--model 3|4|5] [--out DIR] [--dhcp-timeout 45] [--files a,b]
//     [--required config.txt,@kernel] [--prefix serial|mac|none|str:NAME] [--help]
// Prints progress to stderr and, last, one line `PI_BOOT_REPORT {json}` on stdout.
// Exit 0: every required file arrived intact; 1: a failure (reasons on stderr and
// in the report's `failures`); 2: bad command line. Importable: runPiBoot(options)
// from server/lab/pi/run.ts.
//
// This file is only the entry point; the parts live in server/lab/pi/, one job each:
//   model.ts         Pi 3B+/4/5 profiles and the identity (MAC, serial) a Pi announces
//   ipv4.ts          dotted-quad arithmetic
//   dhcp-build.ts    the DISCOVER and REQUEST, byte for byte as the EEPROM sends them
//   dhcp-parse.ts    parsing the server's replies
//   dhcp-offer.ts    judging an OFFER as the EEPROM does (option 43 menu, 66/54)
//   dhcp-phase.ts    the DHCP exchange on port 68 (the wire summary and the socket notes)
//   lease.ts         one exchange's address put on the interface for TFTP
//   rom-phase.ts     the Pi 3B+ ROM: its lease, bootcode.bin and bootsig.bin from the root
//   tftp-packets.ts  TFTP packets and the OACK check
//   tftp-transfer.ts one lock-step TFTP read
//   tftp-phase.ts    the files in the EEPROM's order per model, and the verdict
//   config-txt.ts    the config.txt keys that decide which files come next
//   net-config.ts    `ip` and sysctl steps, undone at the end
//   udp.ts           socket bind/close
//   options.ts       what a run can be told, and its defaults
//   report.ts        the PI_BOOT_REPORT shape
//   run.ts           one boot, start to end
//   cli.ts           the command line
// It has its own DHCP and TFTP encoding on purpose: it is the independent peer that
// checks bootfarm's codecs, so nothing in server/lab/pi/ imports them.
//
// Needs root (CAP_NET_ADMIN for `ip`, CAP_NET_BIND_SERVICE for port 68). Node
// built-ins only, so it runs anywhere the repo's test tooling runs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from './pi/cli.js';

const invokedAs = process.argv[1] ? path.resolve(process.argv[1]) : '';
if (invokedAs === fileURLToPath(import.meta.url)) {
  void main();
}
