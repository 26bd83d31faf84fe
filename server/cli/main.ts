#!/usr/bin/env node
// bootfarm command line: every verb is a thin layer over the same core.
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import { createLogger } from '../log.js';
import { Bootfarm } from '../app.js';
import { SocketSetupError } from '../dhcp/server/sockets.js';

function fail(err: unknown): never {
  if (err instanceof ConfigError || err instanceof SocketSetupError) {
    process.stderr.write(`bootfarm: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`bootfarm: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}

const program = new Command();
program.name('bootfarm').description('Network-boot provisioning server: DHCP, TFTP, HTTP and NBD for bare-metal and Raspberry Pi fleets');

program
  .command('serve')
  .description('start every enabled service')
  .requiredOption('-c, --config <file>', 'configuration file (YAML)')
  .action(async (opts: { config: string }) => {
    let app: Bootfarm;
    try {
      const config = loadConfig(opts.config);
      const logger = createLogger(config.log.level);
      app = new Bootfarm(config, logger);
      await app.start();
      logger.info({ config: opts.config, pid: process.pid }, 'bootfarm ready');
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping');
        app.stop().then(() => { logger.info('stopped'); process.exit(0); }, (err: unknown) => fail(err));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
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
      const subnets = config.dhcp.subnets.map((s) => s.cidr).join(', ') || 'none';
      process.stdout.write(`${file}: ok (dhcp ${config.dhcp.mode}, subnets: ${subnets}, ${config.nodes.length} nodes)\n`);
    } catch (err) {
      fail(err);
    }
  });

program.parseAsync(process.argv).catch(fail);
