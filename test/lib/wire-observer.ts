// Stands where bootfarm's TFTP (69) and HTTP (8080) servers will stand, and
// reports every request a guest makes, one JSON line each, so a test can see
// which boot file a real firmware asked for. It refuses every request (TFTP
// ERROR 1, HTTP 404): the guest gets exactly as far as its first fetch.
// Usage (in a namespace): node --import tsx test/lib/wire-observer.ts [tftpPort] [httpPort]
import dgram from 'node:dgram';
import http from 'node:http';

const tftpPort = Number(process.argv[2] ?? 69);
const httpPort = Number(process.argv[3] ?? 8080);

const tftp = dgram.createSocket('udp4');
tftp.on('message', (msg, rinfo) => {
  if (msg.length < 4 || msg.readUInt16BE(0) !== 1) return;
  const fields = msg.subarray(2).toString('latin1').split('\0');
  process.stdout.write(
    `${JSON.stringify({ proto: 'tftp', file: fields[0], mode: fields[1], options: fields.slice(2, -1), from: rinfo.address })}\n`,
  );
  const error = Buffer.concat([Buffer.from([0, 5, 0, 1]), Buffer.from('File not found\0', 'latin1')]);
  tftp.send(error, rinfo.port, rinfo.address);
});
tftp.bind(tftpPort, '0.0.0.0');

const server = http.createServer((req, res) => {
  process.stdout.write(`${JSON.stringify({ proto: 'http', method: req.method, path: req.url, from: req.socket.remoteAddress })}\n`);
  res.writeHead(404).end();
});
server.listen(httpPort, '0.0.0.0', () => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
process.on('SIGTERM', () => process.exit(0));
