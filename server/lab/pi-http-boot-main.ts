// Runs the scripted Pi 4/5 EEPROM's HTTP boot (server/lab/pi/http-phase.ts) as a
// process, so it can run inside a test or lab namespace as the node. Prints the
// report as one JSON line; exit 0 when the image was accepted and checked out.
//   pi-http-boot-main.ts --host H --port P --path pi/<serial> --pubkey FILE --model 4|5 --hostname NAME --work DIR [--expect name=sha256]...
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { httpPhase } from './pi/http-phase.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string' },
    port: { type: 'string', default: '80' },
    path: { type: 'string' },
    pubkey: { type: 'string' },
    model: { type: 'string', default: '4' },
    hostname: { type: 'string' },
    work: { type: 'string' },
    expect: { type: 'string', multiple: true, default: [] },
  },
});
const { host, path, pubkey, hostname, work } = values;
if (!host || !path || !pubkey || !hostname || !work || (values.model !== '4' && values.model !== '5')) {
  process.stderr.write(
    'usage: pi-http-boot-main.ts --host H --port P --path PATH --pubkey FILE --model 4|5 --hostname NAME --work DIR [--expect name=sha256]...\n',
  );
  process.exit(2);
}
const expectFiles = Object.fromEntries(values.expect.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
const report = await httpPhase({
  host,
  port: Number(values.port),
  path,
  publicKeyPem: readFileSync(pubkey, 'utf8'),
  model: values.model === '5' ? 5 : 4,
  hostname,
  workDir: work,
  expectFiles,
});
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(report.ok ? 0 : 1);
