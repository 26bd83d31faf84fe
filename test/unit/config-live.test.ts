// Which keys a reload applies and which wait for a restart (server/config/live.ts).
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../server/config/load.js';
import { mergeReload } from '../../server/config/live.js';

const FILE = '/etc/bootfarm/bootfarm.yaml';
const base = {
  server: { address: '10.9.0.1', stateDir: '/var/lib/bootfarm' },
  tftp: { root: '/srv/tftp' },
  http: { port: 8080 },
  images: { dir: '/srv/images', default: 'base' },
  boot: { kernelArgs: 'quiet' },
  defaults: { lts: { SCREEN_07: 'xterm' } },
  profiles: [{ name: 'lab', match: { macPrefix: '52:54:00' }, lts: { LDM_THEME: 'old' } }],
  nodes: [{ mac: '52:54:00:00:00:01', hostname: 'n1' }],
};
const load = (change: Record<string, unknown>) => parseConfig(stringify({ ...base, ...change }), FILE);

describe('mergeReload', () => {
  it('applies nodes, profiles, defaults, unknownNodes, images.default and boot.kernelArgs with nothing to restart', () => {
    const running = load({});
    const next = load({
      images: { dir: '/srv/images', default: 'v2' },
      boot: { kernelArgs: 'quiet splash' },
      defaults: { lts: { SCREEN_07: 'ldm' } },
      profiles: [
        { name: 'lab', match: { macPrefix: '52:54:00' }, lts: { LDM_THEME: 'new' } },
        { name: 'pi', lts: { X: '1' } },
      ],
      nodes: [
        { mac: '52:54:00:00:00:01', hostname: 'n1' },
        { mac: '52:54:00:00:00:02', hostname: 'n2', profile: 'pi' },
      ],
      unknownNodes: 'boot-default',
    });
    const merged = mergeReload(running, next);
    expect(merged.restartRequired).toEqual([]);
    expect(merged.config).toEqual(next);
  });

  it('names every key read only at start and keeps its running value', () => {
    const running = load({});
    const next = load({
      server: { address: '10.9.0.2', stateDir: '/var/lib/other', drainSeconds: 30 },
      tftp: { root: '/srv/tftp2', port: 6969 },
      http: { port: 8081 },
      dhcp: { mode: 'proxy' },
      images: { dir: '/srv/images2', default: 'v2' },
      boot: { kernelArgs: 'quiet', bios: 'other.kpxe' },
      api: { token: 'a-long-enough-api-token-0123456789' },
      nodes: [{ mac: '52:54:00:00:00:09', hostname: 'n9' }],
    });
    const merged = mergeReload(running, next);
    expect(merged.restartRequired.sort()).toEqual([
      'api.token',
      'api.tokenSource',
      'boot.bios',
      'dhcp.mode',
      'http.port',
      'images.dir',
      'server.address',
      'server.drainSeconds',
      'server.stateDir',
      'tftp.port',
      'tftp.root',
    ]);
    expect(merged.config).toEqual({ ...running, nodes: next.nodes, layers: next.layers, images: { ...running.images, default: 'v2' } });
  });
});
