// A lab node's boot as bootfarm's API records it (GET /api/v1/nodes/{mac}/events),
// read as the steps the lab reports: which step each event stands for, and
// whether the boot failed. Pure: the lab (server/lab/lab.ts) and its attacker
// (server/lab/attacker.ts) both read timelines through it.

/** The steps of a boot, in order, as the lab reports them. */
export const STEPS = ['dhcp', 'bootloader', 'kernel', 'initrd', 'root attached', 'booted', 'joined'] as const;
export type Step = (typeof STEPS)[number];

export interface TimelineEvent {
  at: string;
  type: string;
  detail?: Record<string, unknown>;
}

/** What each node's boot files look like: the step a fetched path stands for. */
function stepOfFile(file: string): Step {
  if (/(^|\/)(vmlinuz|kernel8\.img|kernel_2712\.img)$/.test(file)) return 'kernel';
  if (/(^|\/)initrd\.img$/.test(file)) return 'initrd';
  return 'bootloader';
}

/** A token was minted in this boot and its deletion is not on the timeline yet. */
export function awaitsRevoke(events: TimelineEvent[]): boolean {
  return events.some((e) => e.type === 'token.minted') && !events.some((e) => e.type === 'token.revoked');
}

/** An event detail's value as text (details are JSON: a string, or anything else printed as JSON). */
function text(value: unknown, fallback = ''): string {
  if (typeof value === 'string') return value;
  return value === undefined || value === null ? fallback : JSON.stringify(value);
}

export function timelineOf(
  events: TimelineEvent[],
  poweredOn: number,
): {
  timeline: Partial<Record<Step, number>>;
  failed?: string | undefined;
  observed?: string | undefined;
  tpmRefused?: string | undefined;
} {
  const timeline: Partial<Record<Step, number>> = {};
  const mark = (step: Step, at: string) => {
    const t = (Date.parse(at) - poweredOn) / 1000;
    if (t >= -1 && timeline[step] === undefined) timeline[step] = Math.max(0, Math.round(t * 10) / 10);
  };
  let failed: string | undefined;
  let observed: string | undefined;
  let tpmRefused: string | undefined;
  for (const e of events) {
    if (Date.parse(e.at) < poweredOn - 1000) continue;
    if (e.type === 'dhcp.offer' || e.type === 'dhcp.ack') mark('dhcp', e.at);
    else if (e.type === 'tftp.file' || e.type === 'http.file') mark(stepOfFile(text(e.detail?.path)), e.at);
    else if (e.type === 'nbd.attach') mark('root attached', e.at);
    else if (e.type === 'agent.booted' || e.type === 'booted') {
      mark('booted', e.at);
      if (e.type === 'agent.booted' && typeof e.detail?.detail === 'string') observed = e.detail.detail;
    } else if (e.type === 'joined') mark('joined', e.at);
    else if (e.type === 'failed') failed = text(e.detail?.reason, 'the node reported a failure');
    // kubernetes.admission: tpm: bootfarm's reason is the verdict; the agent's report of it follows as "failed".
    else if (e.type === 'tpm.refused') tpmRefused = `tpm.refused ${text(e.detail?.reason)}: ${text(e.detail?.message)}`;
    // A kernel or initrd the node cannot get ends its boot: no need to wait for the time limit.
    else if (/^(http|tftp)\.(404|not-found)$/.test(e.type) && stepOfFile(text(e.detail?.path)) !== 'bootloader')
      failed = `${text(e.detail?.path)}: not found on the server`;
  }
  return { timeline, failed: failed && (tpmRefused ?? failed), observed, tpmRefused };
}
