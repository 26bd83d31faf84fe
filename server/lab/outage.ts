// The lab's server outage with a node's root attached (issue 12): bootfarm is
// killed (or stopped), kept down, started again; the node must live through it.
// Before the kill the node starts reading a file in a loop (dropping its page
// cache each pass), so requests are in flight when bootfarm dies; every pass must
// give the image's sha256. While bootfarm is down the node is told to drop its
// page cache and read a file it never read: that read blocks (it must not fail)
// and finishes once bootfarm is back. Then, with bootfarm up, the cache is dropped again and another unread
// file is read, a file is written and read back on the overlay, and the node's
// agent reports to bootfarm. Both files' sha256 are compared with the image's.
// A node booted with its image copied to RAM (NBD_TO_RAM, bootfarm.toram=1) is
// held to more: its root is not on NBD at all, and the read issued while bootfarm
// is down finishes while it is still down.
import { run } from './proc.js';
import { guestRun as guestRunRaw, type GuestRun } from './guest-shell.js';

export interface OutagePlan {
  signal: 'SIGKILL' | 'SIGTERM';
  downSeconds: number;
  /** The node's root: attached over NBD (reads block while bootfarm is down), or copied to RAM (reads go on). */
  root: 'nbd' | 'ram';
  /** The node's image (host path), where the files and their digests come from. */
  squashfs: string;
  /** The node's command channel (server/lab/guest-shell.ts). */
  controlSocket: string;
  halt: (signal: 'SIGKILL' | 'SIGTERM') => Promise<void>;
  /** Done while bootfarm is down, beside the wait (e.g. a new image version published). */
  whileDown?: () => Promise<void>;
  start: () => Promise<void>;
  /** The node's boot timeline as bootfarm records it. */
  events: () => Promise<Array<{ at: string; type: string }>>;
  /** The node's console so far (its kernel log shows the NBD client's reconnects). */
  console: () => string[];
  log: (line: string) => void;
}

interface ReadCheck {
  file: string;
  bytes: number;
  /** From the image. */
  expected: string;
  /** What the node read. */
  sha256: string;
}

export interface OutageReport {
  signal: 'SIGKILL' | 'SIGTERM';
  root: 'nbd' | 'ram';
  /** What the node says its root is (/run/bootfarm/source: nbd or toram) and whether /dev/nbd0 is still connected. */
  nodeRoot: { source: string; nbdConnected: boolean };
  /** From the moment bootfarm was gone to the moment it was started again. */
  downSeconds: number;
  /**
   * Issued while bootfarm was down. Root on NBD: it blocked and ended this long
   * after bootfarm was ready again. Root in RAM: it ended while bootfarm was down
   * (finishedAfterReadySeconds negative: that long before it was back).
   */
  blockedRead: ReadCheck & { finishedAfterReadySeconds: number };
  /** Issued once bootfarm was back; seconds: the node's own time for the cold read. */
  afterReturn: ReadCheck & { seconds: number; overlay: { wrote: string; read: string }; agentAlive: boolean };
  /** The loop that read across the kill: passes done, and the digests that were not the image's (none). */
  reader: { file: string; passes: number; wrong: string[] };
  /** bootfarm-nbd's lines in the node's kernel log from the outage on. */
  client: string[];
  failure?: string;
}

/** The largest kernel modules of the image: files no boot reads (a loaded module is not in the page cache). */
async function unreadFiles(squashfs: string, count: number): Promise<Array<{ file: string; bytes: number; expected: string }>> {
  const list = await run('unsquashfs', ['-lls', '-d', '', squashfs], 120_000);
  if (list.code !== 0) throw new Error(`unsquashfs -lls ${squashfs}: ${list.stderr}`);
  const files = list.stdout
    .split('\n')
    .flatMap((line) => {
      // -rw-r--r-- root/root  1234567 2024-01-01 00:00 /usr/lib/modules/6.1.0/kernel/drivers/x.ko
      const m = /^-\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+(\/usr\/lib\/modules\/\S+\.ko(\.xz|\.zst)?)$/.exec(line);
      return m ? [{ file: m[2] as string, bytes: Number(m[1]) }] : [];
    })
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, count);
  if (files.length < count) throw new Error(`${squashfs}: fewer than ${count} kernel modules to read`);
  const out = [];
  for (const f of files) {
    const sum = await run('sh', ['-c', 'unsquashfs -cat "$1" "$2" | sha256sum', 'sh', squashfs, f.file], 120_000);
    if (sum.code !== 0) throw new Error(`unsquashfs -cat ${f.file}: ${sum.stderr}`);
    out.push({ ...f, expected: sum.stdout.split(' ')[0] as string });
  }
  return out;
}

/** The node drops its page cache and reads `file`; prints `READ <sha256> <seconds>`. */
function readScript(file: string): string {
  return [
    'echo 3 > /proc/sys/vm/drop_caches',
    's=$(date +%s.%N)',
    `h=$(sha256sum '${file}' | cut -d' ' -f1)`,
    'e=$(date +%s.%N)',
    'echo "READ $h $(echo "$s $e" | awk \'{printf "%.2f", $2 - $1}\')"',
  ].join('\n');
}

/** A file written on the overlay and read back, and a report through the node's agent. */
function aliveScript(token: string): string {
  return [
    `echo '${token}' > /var/tmp/bootfarm-lab-outage && sync`,
    'echo "OVERLAY $(cat /var/tmp/bootfarm-lab-outage)"',
    '. /usr/lib/bootfarm/lib.sh && bf_cmdline && bf_fetch_config && bf_report alive ok "root and overlay readable after a server outage"',
  ].join('\n');
}

/** Reads `file` again and again, a cold read each pass, until told to stop; waits for the first pass. */
function readerStart(file: string): string {
  return [
    'rm -f /run/bootfarm-lab-reader /run/bootfarm-lab-reader.stop',
    `setsid sh -c 'while [ ! -e /run/bootfarm-lab-reader.stop ]; do echo 3 > /proc/sys/vm/drop_caches; sha256sum ${file} >> /run/bootfarm-lab-reader 2>&1 || echo FAILED >> /run/bootfarm-lab-reader; done; echo STOPPED >> /run/bootfarm-lab-reader' </dev/null >/dev/null 2>&1 &`,
    'while [ ! -s /run/bootfarm-lab-reader ]; do sleep 1; done',
  ].join('\n');
}

function readerStop(): string {
  return [
    'touch /run/bootfarm-lab-reader.stop',
    'while ! grep -q STOPPED /run/bootfarm-lab-reader; do sleep 1; done',
    "sed 's/^/READER /' /run/bootfarm-lab-reader",
  ].join('\n');
}

function parseRead(output: string): { sha256: string; seconds: number } | undefined {
  const m = /^READ ([0-9a-f]{64}) ([\d.]+)$/m.exec(output);
  return m ? { sha256: m[1] as string, seconds: Number(m[2]) } : undefined;
}

const since = (t: number) => Math.round((Date.now() - t) / 100) / 10;

export async function serverOutage(plan: OutagePlan): Promise<OutageReport> {
  // A shell that never ends says why in the node's kernel log (an NBD client stuck, a hung task): the error carries its tail.
  const guestRun = (socket: string, script: string, timeoutMs: number): Promise<GuestRun> =>
    guestRunRaw(socket, script, timeoutMs).catch((err: unknown) => {
      const tail = plan.console().slice(-30).join('\n');
      throw new Error(`${err instanceof Error ? err.message : String(err)}\nthe node's console, last lines:\n${tail}`);
    });
  const [blockedFile, afterFile, loopFile] = (await unreadFiles(plan.squashfs, 3)) as Array<Omit<ReadCheck, 'sha256'>> as [
    Omit<ReadCheck, 'sha256'>,
    Omit<ReadCheck, 'sha256'>,
    Omit<ReadCheck, 'sha256'>,
  ];
  // The channel works before anything else happens (the node's shell is up).
  const hello = await guestRun(plan.controlSocket, 'uname -n', 120_000);
  plan.log(`node shell: ${hello.output.trim()}`);
  // /sys/block/nbd0/pid exists while a client holds the device connected.
  const rootInfo = await guestRun(
    plan.controlSocket,
    'echo "SOURCE $(cat /run/bootfarm/source)"; [ -e /sys/block/nbd0/pid ] && echo NBD connected || echo NBD none',
    120_000,
  );
  const nodeRoot = { source: /^SOURCE (\S*)$/m.exec(rootInfo.output)?.[1] ?? '', nbdConnected: /^NBD connected$/m.test(rootInfo.output) };
  plan.log(`node root: ${nodeRoot.source || '(unknown)'}, /dev/nbd0 ${nodeRoot.nbdConnected ? 'connected' : 'not connected'}`);
  const consoleFrom = plan.console().length;
  const started = await guestRun(plan.controlSocket, readerStart(loopFile.file), 300_000);
  if (started.code !== 0) throw new Error(`the node could not start its reading loop: ${started.output}`);

  await plan.halt(plan.signal);
  const downAt = Date.now();
  plan.log(`bootfarm halted (${plan.signal}); down for ${plan.downSeconds} s`);
  // Issued while bootfarm is away: it must block, not fail.
  const blocked = guestRun(plan.controlSocket, readScript(blockedFile.file), (plan.downSeconds + 900) * 1000);
  let blockedDone: number | undefined;
  void blocked.then(
    () => {
      blockedDone = Date.now();
    },
    () => undefined,
  );
  await Promise.all([new Promise((r) => setTimeout(r, plan.downSeconds * 1000)), plan.whileDown?.()]);
  // Root on NBD: finished while down = it did not wait for the server. Root in RAM: it had to.
  const finishedWhileDown = blockedDone !== undefined;
  const downSeconds = since(downAt);
  await plan.start();
  const readyAt = Date.now();
  plan.log(`bootfarm started again after ${downSeconds} s down`);
  const b = await blocked;
  const blockedRead = {
    ...blockedFile,
    sha256: parseRead(b.output)?.sha256 ?? '',
    finishedAfterReadySeconds: Math.round(((blockedDone ?? Date.now()) - readyAt) / 100) / 10,
  };
  plan.log(`read issued while down finished ${blockedRead.finishedAfterReadySeconds} s after bootfarm was ready (exit ${b.code})`);

  const token = `outage-${downAt}`;
  const a = await guestRun(plan.controlSocket, `${readScript(afterFile.file)}\n${aliveScript(token)}`, 900_000);
  const stopped = await guestRun(plan.controlSocket, readerStop(), 900_000);
  const passes = [...stopped.output.matchAll(/^READER (.*)$/gm)].map((m) => (m[1] as string).trim()).filter((l) => l !== 'STOPPED');
  const reader = {
    file: loopFile.file,
    passes: passes.length,
    wrong: passes.filter((l) => l !== `${loopFile.expected}  ${loopFile.file}`),
  };
  const read = parseRead(a.output);
  const overlay = /^OVERLAY (.*)$/m.exec(a.output)?.[1] ?? '';
  let agentAlive = false;
  for (let tries = 0; tries < 30 && !agentAlive; tries++) {
    agentAlive = (await plan.events()).some((e) => e.type === 'agent.alive' && Date.parse(e.at) >= readyAt - 1000);
    if (!agentAlive) await new Promise((r) => setTimeout(r, 1000));
  }
  const report: OutageReport = {
    signal: plan.signal,
    root: plan.root,
    nodeRoot,
    downSeconds,
    blockedRead,
    afterReturn: {
      ...afterFile,
      sha256: read?.sha256 ?? '',
      seconds: read?.seconds ?? -1,
      overlay: { wrote: token, read: overlay },
      agentAlive,
    },
    reader,
    client: plan
      .console()
      .slice(consoleFrom)
      .filter((l) => l.includes('bootfarm-nbd:'))
      .map((l) => l.replace(/^\[\s*[\d.]+\]\s*/, '').trim()),
  };
  const expectedSource = plan.root === 'ram' ? 'toram' : 'nbd';
  const failures = [
    nodeRoot.source !== expectedSource
      ? `the node's root is ${JSON.stringify(nodeRoot.source)} (/run/bootfarm/source), expected ${expectedSource}`
      : '',
    plan.root === 'ram' && nodeRoot.nbdConnected ? 'the node should run from RAM, but /dev/nbd0 is still connected' : '',
    plan.root === 'nbd' && finishedWhileDown ? 'the read issued while bootfarm was down finished before bootfarm was back' : '',
    plan.root === 'ram' && !finishedWhileDown
      ? "the node's root is in RAM, yet the read issued while bootfarm was down waited for bootfarm"
      : '',
    b.code !== 0 ? `the read issued while bootfarm was down failed (exit ${b.code}): ${b.output.slice(-500)}` : '',
    blockedRead.sha256 !== blockedRead.expected
      ? `${blockedRead.file}: sha256 ${blockedRead.sha256 || '(none)'} != image ${blockedRead.expected}`
      : '',
    a.code !== 0 ? `the checks after bootfarm came back failed (exit ${a.code}): ${a.output.slice(-500)}` : '',
    report.afterReturn.sha256 !== afterFile.expected
      ? `${afterFile.file}: sha256 ${report.afterReturn.sha256 || '(none)'} != image ${afterFile.expected}`
      : '',
    overlay !== token ? `overlay: wrote ${token}, read ${JSON.stringify(overlay)}` : '',
    agentAlive ? '' : 'the agent did not report after bootfarm came back',
    stopped.code !== 0 || reader.passes < 2
      ? `the reading loop did not run across the outage (exit ${stopped.code}, ${reader.passes} passes)`
      : '',
    reader.wrong.length ? `the reading loop read wrong or failed: ${reader.wrong.slice(0, 3).join(' | ')}` : '',
  ].filter(Boolean);
  if (failures.length) report.failure = `server outage: ${failures.join('; ')}`;
  return report;
}
