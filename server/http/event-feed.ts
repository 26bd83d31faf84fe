// What the store records, as it is recorded, for live readers (the dashboard's
// server-sent events, server/http/dashboard.ts). The store keeps the timelines;
// this only passes each new event on to whoever listens now, and keeps nothing.
// It taps the store's own recordEvent and putDiscovered, so every producer (DHCP,
// TFTP, HTTP, NBD, the agent and the join) is covered without each one knowing.
import type { NodeEvent, Store } from '../store/store.js';
import type { DiscoveredMachine } from '../store/discovered-index.js';

export type FeedItem = { kind: 'node'; event: NodeEvent } | { kind: 'discovered'; machine: DiscoveredMachine };

export type FeedListener = (item: FeedItem) => void;

export class EventFeed {
  private readonly listeners = new Set<FeedListener>();

  /** Returns the function that ends the subscription. */
  subscribe(listener: FeedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  publish(item: FeedItem): void {
    // A listener's failure is its own (a closed stream): the store's write never depends on it.
    for (const listener of this.listeners) {
      try {
        listener(item);
      } catch {
        this.listeners.delete(listener);
      }
    }
  }
}

type Tappable = Pick<Store, 'recordEvent' | 'putDiscovered'>;

// One feed per store, however many HTTP servers ask (a restart of the HTTP side
// must not wrap the store's methods again).
const feeds = new WeakMap<Tappable, EventFeed>();

/** The store's feed: its recordEvent and putDiscovered publish after they record. */
export function feedOf(store: Tappable): EventFeed {
  const known = feeds.get(store);
  if (known) return known;
  const feed = new EventFeed();
  const recordEvent = store.recordEvent.bind(store);
  const putDiscovered = store.putDiscovered.bind(store);
  store.recordEvent = (event) => {
    recordEvent(event);
    feed.publish({ kind: 'node', event });
  };
  store.putDiscovered = (machine) => {
    putDiscovered(machine);
    feed.publish({ kind: 'discovered', machine });
  };
  feeds.set(store, feed);
  return feed;
}
