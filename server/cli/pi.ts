// `bootfarm pi eeprom-config NODE|--all`: what to program into a Pi 4/5's
// bootloader EEPROM so it boots from this bootfarm (eeprom-bootloader.adoc), and,
// for piBoot: http, the public key `rpi-eeprom-config --pubkey` stores with it.
// From the configuration file alone; the signing key is generated into
// server.stateDir if this is its first use (the server then signs with the same key).
import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/types.js';
import { effectiveNode, type EffectiveNode } from '../inventory/effective.js';
import { SetupError } from '../errors.js';
import { findConfigNode } from './render.js';
import { piModelOf } from '../boot/files/pi-models.js';
import { piHttpPath } from '../pi/http-boot.js';
import { loadOrCreateSigningKey, publicKeyPem, signingKeyFile } from '../pi/signing-key.js';

/**
 * BOOT_ORDER is read from the lowest nibble up (eeprom-bootloader.adoc): the
 * network mode first, then the SD card (a Pi with a card still boots it when
 * bootfarm is away), then 0xf, start over.
 */
const BOOT_ORDER = { tftp: '0xf12', http: '0xf17' } as const;

/** The EEPROM lines for one node, with a comment saying which node and why. */
function eepromLines(node: EffectiveNode, config: ResolvedConfig): string[] {
  const serial = node.piSerial;
  if (!serial) throw new SetupError(`${node.hostname} has no piSerial: it is not a Raspberry Pi node`);
  const model = piModelOf(node);
  const mode = node.piBoot ?? 'tftp';
  const head = `# ${node.hostname}: ${model === undefined ? 'Pi (piModel unset)' : `Pi ${model}`}, serial ${serial}, MAC ${node.mac}, piBoot: ${mode}`;
  if (model === 3)
    return [head, '# A Pi 3B+ has no EEPROM: its boot ROM netboots when no SD card boots (boot-net.adoc). Nothing to program.'];
  const lines = [
    head,
    '[all]',
    `BOOT_ORDER=${BOOT_ORDER[mode]}`,
    '# the serial as the TFTP directory (bootfarm serves <serial>/config.txt ...)',
    'TFTP_PREFIX=0',
  ];
  if (mode === 'http')
    lines.push(
      `HTTP_HOST=${config.server.address}`,
      `HTTP_PORT=${config.http.port}`,
      `HTTP_PATH=${piHttpPath(serial)}`,
      '# no network-install screen when a keyboard is plugged in',
      'NET_INSTALL_ENABLED=0',
    );
  return lines;
}

export function registerPiCommands(program: Command, fail: (err: unknown) => never): void {
  const pi = program.command('pi').description('Raspberry Pi tools');
  pi.command('eeprom-config')
    .description(
      'print the bootloader EEPROM settings of a Pi 4/5 node (BOOT_ORDER, TFTP_PREFIX, and for piBoot: http HTTP_HOST, HTTP_PORT, HTTP_PATH) and the public key to program with `rpi-eeprom-config --pubkey`',
    )
    .argument('[node]', 'MAC or host name of a node in the configuration')
    .option('--all', 'every node with a piSerial')
    .requiredOption('-c, --config <file>', 'configuration file (YAML)')
    .action(async (name: string | undefined, opts: { all?: boolean; config: string }) => {
      try {
        if ((name === undefined) === (opts.all !== true)) throw new SetupError('name one node (MAC or host name) or give --all');
        const config = loadConfig(opts.config);
        const nodes =
          name !== undefined
            ? [findConfigNode(config, name)]
            : config.nodes.filter((n) => n.piSerial).map((n) => effectiveNode(n, config.layers, 'config'));
        if (nodes.length === 0) throw new SetupError(`${config.file} has no node with a piSerial`);
        const out = nodes.map((n) => eepromLines(n, config).join('\n'));
        if (nodes.some((n) => n.piBoot === 'http')) {
          const key = await loadOrCreateSigningKey(config);
          out.push(
            [
              `# The public key of ${signingKeyFile(config)}: save it as bootfarm-pi.pub.pem and program it with the lines above:`,
              '#   rpi-eeprom-config --config boot.conf --pubkey bootfarm-pi.pub.pem --out pieeprom.upd "$(rpi-eeprom-update -l)"',
              '#   sudo rpi-eeprom-update -d -f pieeprom.upd',
              publicKeyPem(key).trimEnd(),
            ].join('\n'),
          );
        }
        process.stdout.write(`${out.join('\n\n')}\n`);
      } catch (err) {
        fail(err);
      }
    });
}
