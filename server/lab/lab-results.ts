// What a lab run is asked to do (LabOptions) and what it reports per node
// (NodeResult): the lab's interface to its command line and its tests.
import type { AttackReport } from './attacker.js';
import type { LabNodeKind } from './lab-nodes.js';
import type { OutageReport } from './outage.js';
import type { Step, TimelineEvent } from './timeline.js';

export interface NodeResult {
  kind: LabNodeKind;
  hostname: string;
  mac: string;
  ok: boolean;
  /** Seconds from power-on to each step reached. */
  timeline: Partial<Record<Step, number>>;
  lastStep: Step | 'power-on';
  failure?: string;
  /** A UEFI node's Secure Boot state as its kernel printed it on the serial console (server/lab/secure-boot-evidence.ts). */
  secureBoot?: 'enabled' | 'disabled' | undefined;
  /** What the node reported about itself (the agent's booted report), if any. */
  observed?: string;
  /** The node's boot timeline as bootfarm recorded it (this boot). */
  events: TimelineEvent[];
  console: string;
  /** The server outage this node lived through after it joined (restartServerAfterJoin). */
  outage?: OutageReport;
  /** upgradeServer: the image IDs bootfarm ran before and after the outage. */
  upgrade?: { from: string; to: string };
  /** publishDuringOutage: the versions, whether the node sees the new one's marker, and gc's verdicts (dry run). */
  publish?: PublishReport;
  /** What the lab's attacker tried against this node and how bootfarm answered (attack). */
  attack?: AttackReport;
}

export interface PublishReport {
  from: string;
  to: string;
  /** The new version's marker file exists in the node's root (it must not: the node reads the version it mounted). */
  markerOnNode: boolean;
  gc: Array<{ version: string; keep: boolean; reasons: string[] }>;
}

export interface LabOptions {
  nodes: LabNodeKind[];
  server: 'host' | 'docker' | 'attach';
  /** server attach: the running container whose bootfarm (deployed by someone else) the nodes boot from (server/lab/lab-attach.ts). */
  attachTo?: string | undefined;
  image: string;
  imagesDir: string;
  workDir?: string;
  /** Per-node limit from power-on to joined. */
  timeoutSeconds: number;
  /** The CLI that runs `bootfarm serve` in host mode (this process's own entry point). */
  cli: { execPath: string; args: string[] };
  log: (line: string) => void;
  /** Keep everything running after the nodes finished (lab up). */
  keep?: AbortSignal | undefined;
  /** Failure injection: these nodes are assigned an image that does not exist. */
  missingImage?: LabNodeKind[];
  /** Failure injection: the fake cluster refuses these nodes' registration (kubeadm join fails). */
  refuseJoin?: LabNodeKind[];
  /** Failure injection: these Secure Boot kinds are configured without secureBoot (server/lab/lab-config.ts). */
  secureBootOff?: LabNodeKind[];
  /**
   * Failure injection: restart bootfarm each time the first node of `nodes`
   * reaches one of these steps (its boot must still complete). Steps the node
   * passes within one poll are restarted for together, once: the report says so.
   */
  restartServerAt?: Step[];
  /**
   * Failure injection: once the first node of `nodes` (a QEMU guest) joined, end
   * bootfarm (SIGKILL, or SIGTERM with restartSignal), keep it down this many
   * seconds, start it again; the node must keep its root (server/lab/outage.ts).
   */
  restartServerAfterJoin?: number;
  restartSignal?: 'SIGKILL' | 'SIGTERM';
  /** These nodes boot with NBD_TO_RAM: the initramfs copies the image to RAM and lets NBD go. */
  toRam?: LabNodeKind[];
  /**
   * With restartServerAfterJoin and the server in docker: the outage is an
   * upgrade. A new server image is built while the node runs; bootfarm's
   * container is stopped and replaced by one of the new image.
   */
  upgradeServer?: boolean;
  /**
   * With restartServerAfterJoin: while bootfarm is down, a new version of the
   * image is published (server/lab/publish-next.ts). The node must reconnect to
   * the version it mounted, and `bootfarm image gc` must keep that version for it.
   */
  publishDuringOutage?: boolean;
  /**
   * An attacker on the lab segment (server/lab/attacker.ts) goes after every QEMU
   * node while it boots and after it joined; a node whose boot, nonce, secret or
   * token the attacker gets, or whose replay leaves no alarm, fails.
   */
  attack?: boolean;
  /**
   * kubernetes.admission for the lab's bootfarm. `approve` (the default: the
   * strictest mode every lab machine supports) has the lab act as the operator:
   * it approves a node's boot once the boot waits, as `bootfarm node approve` would.
   * `tpm`: each QEMU node gets its own swtpm, whose EK is registered before it
   * powers on (server/lab/lab-tpm.ts); amd64 nodes only (the Debian arm64 kernel
   * has no TIS driver for QEMU virt's tpm-tis-device).
   */
  admission?: 'auto' | 'approve' | 'tpm';
  /**
   * Failure injection for admission `tpm`, by hostname: these nodes boot with a
   * different swtpm than the one registered for them and must be refused.
   */
  tpmImpostors?: string[];
}
