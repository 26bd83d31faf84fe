// Which docker volumes a test's own containers leave behind. An image's VOLUME
// (the server image's /var/lib/bootfarm) gives every container made from it an
// anonymous volume, which `docker rm` without -v (dockerode: remove without
// v: true) leaves on the daemon: a full run on a fresh machine left 13. The daemon
// is shared with other people's runs, so "no new dangling volume" would blame this
// test for theirs: the daemon's events name each volume a container mounts, and only
// the containers a test names as its own count.
import { Background, run, runOk } from '../../server/lab/proc.js';

interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

// Container creations (their names) and volume mounts (which container); `event=create`
// matches volume creations too, which carry no container and are ignored.
const FILTERS = ['--filter', 'type=container', '--filter', 'type=volume', '--filter', 'event=create', '--filter', 'event=mount'];

/**
 * Started before a test's containers: `left()` then names the volumes those
 * containers mounted that still exist. A container is seen by the volumes it mounts
 * when it starts; one only created (never started) mounts nothing: inspect that one
 * (volumesOf) while it exists.
 */
export class VolumeWatch {
  private constructor(
    private readonly events: Background,
    private readonly since: number,
  ) {}

  static start(): VolumeWatch {
    // --since replays what the daemon did from then on, so events between this call and
    // the subscription are not lost (a second back: the flag takes whole seconds here).
    const since = Math.floor(Date.now() / 1000) - 1;
    return new VolumeWatch(
      Background.start('docker', ['events', '--since', String(since), ...FILTERS, '--format', '{{json .}}'], 'docker events'),
      since,
    );
  }

  /**
   * Stops watching; the volumes mounted by containers whose name `ours` accepts
   * that the daemon still has, each as "<volume> (container <name>, <image>)".
   */
  async left(ours: (containerName: string) => boolean): Promise<string[]> {
    await this.events.stop('SIGTERM', 3000);
    const lines = [...this.events.lines];
    // The stream may not have delivered the last events yet: replay them from the daemon's
    // buffer, from the last one seen to a second from now (`--until` ends the replay).
    const parsed = lines.map(parse);
    const last = Math.max(this.since, ...parsed.map((e) => e?.time ?? 0));
    const tail = await run(
      'docker',
      ['events', '--since', String(last), '--until', String(Math.ceil(Date.now() / 1000) + 1), ...FILTERS, '--format', '{{json .}}'],
      30_000,
    );
    if (tail.code !== 0) throw new Error(`docker events (replay) failed (${tail.code}): ${tail.stderr}`);
    const containers = new Map<string, { name: string; image: string }>();
    const mounts = new Map<string, string>();
    for (const e of [...parsed, ...tail.stdout.split('\n').map(parse)]) {
      const id = e?.Actor?.ID;
      const attrs = e?.Actor?.Attributes ?? {};
      if (!id) continue;
      if (e.Type === 'container' && e.Action === 'create' && attrs.name)
        containers.set(id, { name: attrs.name, image: attrs.image ?? '?' });
      if (e.Type === 'volume' && e.Action === 'mount' && attrs.container) mounts.set(id, attrs.container);
    }
    const present = new Set(await volumeNames());
    const out: string[] = [];
    for (const [volume, containerId] of mounts) {
      const c = containers.get(containerId);
      if (c && ours(c.name) && present.has(volume)) out.push(`${volume} (container ${c.name}, ${c.image})`);
    }
    return out.sort();
  }
}

function parse(line: string): DockerEvent | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as DockerEvent;
  } catch {
    return undefined;
  }
}

/** Every volume the daemon has. */
export async function volumeNames(): Promise<string[]> {
  return (await runOk('docker', ['volume', 'ls', '-q'])).split('\n').filter(Boolean);
}

/** The volumes (anonymous or named) mounted in an existing container. */
export async function volumesOf(container: string): Promise<string[]> {
  const mounts = JSON.parse(await runOk('docker', ['inspect', '-f', '{{json .Mounts}}', container])) as Array<{
    Type: string;
    Name?: string;
  }>;
  return mounts.filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name as string);
}
