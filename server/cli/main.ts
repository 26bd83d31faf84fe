#!/usr/bin/env node
// bootfarm command line: every verb is a thin layer over the same core.
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { createLogger, endLog } from '../log.js';
import { Bootfarm } from '../app.js';
import { installProcessGuards } from '../process-guard.js';
import { SetupError } from '../errors.js';
import { installGrubArm64, installIpxe, installSecureBoot } from '../boot/bootloaders.js';
import { TemplateSet } from '../config/templates.js';
import path from 'node:path';
import { secureBootImageProblems } from '../config/secure-boot-check.js';
import { signingProblems } from '../boot/signing-check.js';
import { signIpxe } from '../boot/signing.js';
import { findConfigNode, registerRenderCommand, renderArtefact } from './render.js';
import { piImageProblems } from '../config/pi-image-check.js';
import { registerNodeCommands } from './node.js';
import { registerLabCommands } from './lab.js';
import { registerImageCommands } from './image.js';
import { registerServerImageCommand } from './server-image.js';
import { registerReloadCommand } from './reload.js';
import { registerStatusCommand } from './status.js';
import { registerPiCommands } from './pi.js';
import { enforceUsage } from './usage.js';
import { readPackageInfo } from './package-info.js';

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof SetupError) {
    process.stderr.write(`bootfarm: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`bootfarm: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}

const program = new Command();
program
  .name('bootfarm')
  .description('Network-boot provisioning server: DHCP, TFTP, HTTP and NBD for bare-metal and Raspberry Pi fleets')
  .version(readPackageInfo().version, '-V, --version', 'print the package version');

program
  .command('serve')
  .description('start every enabled service')
  .requiredOption('-c, --config <file>', 'configuration file (YAML)')
  .option(
    '--repair',
    'if a state file under server.stateDir is damaged: keep every intact record, move the damaged file aside (<file>.damaged-<time>), log what was dropped, and start',
  )
  .action(async (opts: { config: string; repair?: boolean }) => {
    let app: Bootfarm;
    try {
      const config = loadConfig(opts.config);
      const logger = createLogger(config.log.level);
      app = new Bootfarm(config, logger, { repairState: opts.repair === true });
      installProcessGuards(logger, app.metrics);
      // SIGHUP re-reads the configuration, as dnsmasq does (`bootfarm reload` asks through the control socket).
      // Installed before the start: the default action of SIGHUP would end the process.
      let ready = false;
      process.on('SIGHUP', () => {
        if (ready) app.reload('SIGHUP');
        else logger.warn('SIGHUP while starting: ignored (send it again once bootfarm is ready)');
      });
      await app.start();
      ready = true;
      logger.info({ config: opts.config, pid: process.pid }, 'bootfarm ready');
      const drainMs = config.server.drainSeconds * 1000;
      let cutDrain: (() => void) | undefined;
      const stop = (signal: string) => {
        if (cutDrain) {
          // A second signal: the operator will not wait for the transfers.
          logger.warn({ signal }, 'second stop signal: cutting the transfers still in flight');
          cutDrain();
          return;
        }
        const cut = new Promise<void>((resolve) => {
          cutDrain = resolve;
        });
        logger.info(
          { signal, drainSeconds: config.server.drainSeconds },
          'stopping: no new TFTP or HTTP transfers; waiting for those in flight',
        );
        const timer = setTimeout(() => cutDrain?.(), drainMs);
        const drained = app.drain().then(() => true);
        Promise.race([drained, cut.then(() => false)])
          .then((finished) => {
            clearTimeout(timer);
            if (finished) logger.info('transfers in flight finished');
            else logger.warn({ tftp: app.tftp?.transfersInFlight ?? 0 }, 'drain ended with transfers still in flight: they are cut');
            return app.stop();
          })
          .then(
            () => {
              logger.info('stopped');
              // Exiting at once could leave an earlier line's asynchronous write in flight, to land
              // after "stopped" or not at all (see endLog).
              return endLog(logger).then(() => process.exit(0));
            },
            (err: unknown) => fail(err),
          );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    } catch (err) {
      fail(err);
    }
  });

program
  .command('bootloaders')
  .description(
    "install the bootloaders into tftp.root from Debian's packages: iPXE (undionly.kpxe, ipxe.efi, snponly.efi) and GRUB for arm64 UEFI (grub/arm64-efi/core.efi)",
  )
  .requiredOption('-c, --config <file>', 'configuration file (YAML)')
  .option('--no-grub', 'skip GRUB for arm64 (it downloads grub-efi-arm64-bin)')
  .option(
    '--secure-boot',
    "also install Debian's signed chain (shim + network GRUB) under secureboot/; done anyway when the configuration sets secureBoot",
  )
  .action((opts: { config: string; grub: boolean; secureBoot?: boolean }) => {
    try {
      const config = loadConfig(opts.config);
      const cache = path.join(config.server.stateDir, 'cache');
      const installed = installIpxe(config.tftp.root);
      if (opts.grub) installed.push(...installGrubArm64(config.tftp.root, { cacheDir: cache }));
      const { defaults, profiles } = config.layers;
      // secureBoot: true only: a site node (secureBoot: site) boots the site-signed iPXE, not shim.
      const shim = [defaults, ...profiles, ...config.nodes].some((layer) => layer.secureBoot === true);
      if (opts.secureBoot || shim) installed.push(...installSecureBoot(config.tftp.root, { cacheDir: cache }, opts.grub));
      // secureBoot: site: iPXE signed with the site's db key (server/boot/signing.ts).
      if (config.boot.signingKey) installed.push(signIpxe(config.tftp.root, config.boot.signingKey));
      for (const { file, source } of installed) {
        process.stdout.write(`${path.join(config.tftp.root, file)} <- ${source}\n`);
      }
    } catch (err) {
      fail(err);
    }
  });

const configCmd = program.command('config').description('configuration tools');
configCmd
  .command('check')
  .description('validate a configuration file without serving')
  .argument('<file>', 'configuration file (YAML)')
  .action((file: string) => {
    try {
      const config = loadConfig(file);
      // Templates are rendered once against a sample node: a template naming a
      // variable that does not exist fails here, not at a node's boot.
      new TemplateSet(config.boot.templatesDir);
      // And every node's own artefacts, so a problem with one node shows now.
      for (const node of config.nodes) {
        const effective = findConfigNode(config, node.mac);
        for (const artefact of [
          'lts.conf',
          'ipxe',
          'grub.cfg',
          ...(effective.piSerial ? ['cmdline.txt', 'config.txt'] : []),
          ...(config.kubernetes && effective.join ? ['join'] : []),
        ]) {
          renderArtefact(config, effective, artefact);
        }
      }
      // A Pi node's image must hold what its model boots from (named when it does not).
      const piImages = piImageProblems(
        config,
        config.nodes.map((n) => findConfigNode(config, n.mac)),
      );
      if (piImages.length > 0) throw new ConfigError(piImages);
      // A secureBoot node's kernel must be signed (named when it is not).
      const unsigned = secureBootImageProblems(
        config,
        config.nodes.map((n) => findConfigNode(config, n.mac)),
      );
      if (unsigned.length > 0) throw new ConfigError(unsigned);
      // boot.signingKey readable, a key, matching its certificate; secureBoot: site nodes served what their firmware trusts.
      const signing = signingProblems(
        config,
        config.nodes.map((n) => findConfigNode(config, n.mac)),
      );
      if (signing.length > 0) throw new ConfigError(signing);
      const subnets = config.dhcp.subnets.map((s) => s.cidr).join(', ') || 'none';
      process.stdout.write(
        `${file}: ok (dhcp ${config.dhcp.mode}, subnets: ${subnets}, ${config.nodes.length} nodes, ${config.layers.profiles.length} profiles, unknown nodes: ${config.unknownNodes}${config.kubernetes ? `, joins ${config.kubernetes.apiServer}` : ''})\n`,
      );
    } catch (err) {
      fail(err);
    }
  });

registerImageCommands(program);
registerServerImageCommand(program, fail);
registerReloadCommand(program, fail);
registerStatusCommand(program, fail);
registerPiCommands(program, fail);
registerRenderCommand(program, fail);
registerNodeCommands(program, fail);
registerLabCommands(program, fail);
// After every command is registered: an unknown command or option exits 2 with one line.
enforceUsage(program, process.argv.slice(2));
program.parseAsync(process.argv).catch(fail);
