// The configuration of the lab's bootfarm: the lab's addresses, what every
// node's evidence entries print (the lab asserts on what the agent reports),
// and its nodes with their failure injections.
import path from 'node:path';
import { GUEST_SHELL_RCFILE } from './guest-shell.js';
import { scriptedPiModel, type LabNodeKind, type NodeSpec } from './lab-nodes.js';

export const SERVER = '10.9.0.1';
export const KUBE = '10.9.0.2';
export const HTTP = `http://${SERVER}:8080`;

export interface LabConfigInput {
  workDir: string;
  imagesDir: string;
  image: string;
  specs: NodeSpec[];
  missingImage?: LabNodeKind[] | undefined;
  /** Failure injection: these Secure Boot kinds' nodes are configured without secureBoot (they get iPXE, which the firmware refuses). */
  secureBootOff?: LabNodeKind[] | undefined;
  toRam?: LabNodeKind[] | undefined;
  /** admission tpm: each QEMU node's registered EK, by hostname. */
  tpmEks: Map<string, string>;
  admission: 'auto' | 'approve' | 'tpm';
  apiToken: string;
  kube: { caCertFile: string; kubeconfig: string };
}

export function labServerConfig(o: LabConfigInput): Record<string, unknown> {
  const tftpRoot = path.join(o.workDir, 'tftpboot');
  return {
    server: { address: SERVER, stateDir: path.join(o.workDir, 'state') },
    // Router advertisements end iPXE's ~16 s wait for IPv6 (server/dhcp/ra/radvd.ts).
    dhcp: {
      mode: 'full',
      interface: 'eth0',
      routerAdvertisements: true,
      subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.199'], router: SERVER, leaseSeconds: 3600 }],
    },
    tftp: { root: tftpRoot },
    http: { port: 8080 },
    nbd: { port: 10809 },
    images: { dir: o.imagesDir, default: o.image },
    // What the guests report back proves these ran: the lab asserts on it.
    defaults: {
      // Each entry prints its evidence; the agent reports what each printed.
      lts: {
        PREINIT_00_LAB: 'echo preinit-ran > /run/bootfarm-lab-preinit && cat /run/bootfarm-lab-preinit',
        FSTAB_01_LAB: 'tmpfs /mnt/bootfarm-lab tmpfs nofail,size=1m 0 0',
        SYSCTL_01_LAB: 'vm.swappiness=7',
        RCFILE_01_LAB: 'cat /run/bootfarm-lab-preinit && echo rcfile-ran',
        RCFILE_02_LAB: 'echo swappiness=$(cat /proc/sys/vm/swappiness)',
        // The lab's command channel into QEMU nodes (server/lab/guest-shell.ts).
        RCFILE_03_LAB: GUEST_SHELL_RCFILE,
      },
      labels: { 'bootfarm.dev/lab': 'true' },
    },
    profiles: [
      { name: 'lab-amd64', match: { arch: 'amd64' }, kernelArgs: 'console=ttyS0' },
      { name: 'lab-arm64', match: { arch: 'arm64' }, kernelArgs: 'console=ttyAMA0' },
      { name: 'lab-armhf', match: { arch: 'armhf' }, kernelArgs: 'console=ttyAMA0' },
    ],
    nodes: o.specs.map((s) => {
      const k = s.kind;
      return {
        mac: s.mac,
        hostname: s.hostname,
        arch: s.arch,
        ...(s.piSerial ? { piSerial: s.piSerial, piModel: scriptedPiModel(s), ...(s.piBoot ? { piBoot: s.piBoot } : {}) } : {}),
        ...(s.secureBoot && !o.secureBootOff?.includes(k) ? { secureBoot: true } : {}),
        ...(o.missingImage?.includes(k) ? { image: 'no-such-image' } : {}),
        ...(o.toRam?.includes(k) ? { lts: { NBD_TO_RAM: 'true' } } : {}),
        ...(o.tpmEks.has(s.hostname) ? { tpm: { ek: o.tpmEks.get(s.hostname) } } : {}),
      };
    }),
    unknownNodes: 'discover',
    kubernetes: {
      apiServer: `${KUBE}:6443`,
      caCertFile: o.kube.caCertFile,
      kubeconfig: o.kube.kubeconfig,
      tokenTtl: '30m',
      version: 'v1.31',
      admission: o.admission,
    },
    api: { token: o.apiToken },
    log: { level: 'info' },
  };
}
