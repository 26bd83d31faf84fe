// Machines seen on the wire but in no inventory, bounded: a segment full of
// forged MACs cannot grow it past `max`. Kept in a Map in order of last update
// (a refresh moves a machine to the end), so the first entry is the one seen
// longest ago and eviction, lookup by MAC and lookup by Pi serial are all O(1).

/** A machine that asked to boot but is in no inventory (unknownNodes: discover). */
export interface DiscoveredMachine {
  mac: string;
  /** From option 93, when the firmware said. */
  arch: 'amd64' | 'arm64' | 'armhf' | undefined;
  firmware: string;
  piSerial: string | undefined;
  piModel: 3 | 4 | 5 | undefined;
  firstSeen: string;
  lastSeen: string;
}

export class DiscoveredIndex {
  private readonly byMac = new Map<string, DiscoveredMachine>();
  private readonly macByPiSerial = new Map<string, string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.byMac.size;
  }

  get(mac: string): DiscoveredMachine | undefined {
    return this.byMac.get(mac);
  }

  byPiSerial(serial: string): DiscoveredMachine | undefined {
    const mac = this.macByPiSerial.get(serial);
    return mac === undefined ? undefined : this.byMac.get(mac);
  }

  /** Adds or refreshes a machine; returns the machines evicted to stay within `max`. */
  put(machine: DiscoveredMachine): DiscoveredMachine[] {
    this.load(machine);
    return this.trim();
  }

  /** While loading the state: no eviction until settleAfterLoad() has the order by lastSeen. */
  load(machine: DiscoveredMachine): void {
    this.delete(machine.mac);
    this.byMac.set(machine.mac, machine);
    if (machine.piSerial) this.macByPiSerial.set(machine.piSerial, machine.mac);
  }

  delete(mac: string): boolean {
    const previous = this.byMac.get(mac);
    if (!previous) return false;
    this.byMac.delete(mac);
    if (previous.piSerial && this.macByPiSerial.get(previous.piSerial) === mac) this.macByPiSerial.delete(previous.piSerial);
    return true;
  }

  /** Oldest first. */
  values(): IterableIterator<DiscoveredMachine> {
    return this.byMac.values();
  }

  /**
   * After loading: reorders by lastSeen (a release before this one kept first-seen
   * order) and trims to `max`. Returns how many were evicted.
   */
  settleAfterLoad(): number {
    const machines = [...this.byMac.values()];
    const seen = machines.map((m) => Date.parse(m.lastSeen) || 0);
    let ordered = true;
    for (let i = 1; i < seen.length && ordered; i++) if ((seen[i] as number) < (seen[i - 1] as number)) ordered = false;
    if (!ordered) {
      const order = machines.map((_, i) => i).sort((a, b) => (seen[a] as number) - (seen[b] as number));
      this.byMac.clear();
      this.macByPiSerial.clear();
      for (const i of order) {
        const machine = machines[i] as DiscoveredMachine;
        this.byMac.set(machine.mac, machine);
        if (machine.piSerial) this.macByPiSerial.set(machine.piSerial, machine.mac);
      }
    }
    return this.trim().length;
  }

  private trim(): DiscoveredMachine[] {
    const evicted: DiscoveredMachine[] = [];
    while (this.byMac.size > this.max) {
      const oldest = this.byMac.keys().next().value as string;
      const machine = this.byMac.get(oldest) as DiscoveredMachine;
      this.delete(oldest);
      evicted.push(machine);
    }
    return evicted;
  }
}
