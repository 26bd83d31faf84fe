// Sends fuzzed DHCP datagrams at a running server from inside a test namespace:
// broadcast and unicast to port 67, and unicast to the boot-server port 4011.
// Usage: node --import tsx test/lib/dhcp-fuzzer.ts SERVER_IP COUNT SEED
import dgram from 'node:dgram';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuzzPackets, loadSeeds } from './dhcp-fuzz-corpus.js';

const [serverIp = '10.9.0.1', countText = '100000', seedText = '1'] = process.argv.slice(2);
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/dhcp');
const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });

socket.bind(68, () => {
  socket.setBroadcast(true);
  socket.setSendBufferSize(4 * 1024 * 1024);
  const targets: Array<[string, number]> = [
    ['255.255.255.255', 67],
    [serverIp, 67],
    [serverIp, 4011],
  ];
  const packets = fuzzPackets(loadSeeds(fixtures), Number(countText), Number(seedText));
  let sent = 0;
  let errors = 0;
  const sendBatch = () => {
    // Small batches, yielding in between, so the kernel queues are not simply overrun.
    for (let i = 0; i < 50; i++) {
      const next = packets.next();
      if (next.done) {
        socket.close();
        process.stdout.write(`${JSON.stringify({ fuzzSent: sent, sendErrors: errors })}\n`);
        return;
      }
      const [address, port] = targets[sent % targets.length] as [string, number];
      socket.send(next.value.data, port, address, (err) => {
        if (err) errors++;
      });
      sent++;
    }
    setTimeout(sendBatch, 1);
  };
  sendBatch();
});
