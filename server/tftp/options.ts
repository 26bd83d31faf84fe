// Option negotiation (RFC 2347, 2348, 2349, 7440; docs/protocol-notes.md §3.3). Names are case-insensitive;
// an invalid value makes the option ignored, not the request refused; only
// options the client sent are answered, with the client's spelling of the name.

export interface TftpLimits {
  /** Largest blksize granted: 1468 fits a 1500-byte MTU unfragmented (tftp-hpa). */
  maxBlockSize: number;
  maxWindowSize: number;
  /** Retransmission timeout when the client names none. */
  defaultTimeoutMs: number;
  /**
   * Largest `timeout` option (seconds) honoured. A client may ask for up to 255 s
   * (RFC 2349), and the transfer gives up only after several silent intervals,
   * so an honoured 255 would hold a transfer slot for ~17 minutes.
   */
  maxTimeoutSeconds: number;
}

export const DEFAULT_TFTP_LIMITS: TftpLimits = { maxBlockSize: 1468, maxWindowSize: 64, defaultTimeoutMs: 1000, maxTimeoutSeconds: 5 };

export interface Negotiated {
  blockSize: number;
  windowSize: number;
  timeoutMs: number;
  /** Options to put in the OACK; empty means no OACK, DATA 1 comes first. */
  oack: Array<[string, string]>;
  /** Known options left out of the OACK because their value was invalid or above a limit (lower-case names). */
  ignored: string[];
}

function integer(value: string, min: number, max: number): number | undefined {
  if (!/^\d{1,10}$/.test(value)) return undefined;
  const n = Number(value);
  return n >= min && n <= max ? n : undefined;
}

export function negotiate(requested: Array<[string, string]>, fileSize: number, limits: TftpLimits): Negotiated {
  const result: Negotiated = { blockSize: 512, windowSize: 1, timeoutMs: limits.defaultTimeoutMs, oack: [], ignored: [] };
  const seen = new Set<string>();
  for (const [name, value] of requested) {
    const key = name.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    switch (key) {
      case 'blksize': {
        const n = integer(value, 8, 65464);
        if (n === undefined) {
          result.ignored.push(key);
          break;
        }
        // A smaller counter-offer is allowed (RFC 2348); one above the MTU gets fragmented.
        result.blockSize = Math.min(n, limits.maxBlockSize);
        result.oack.push([name, String(result.blockSize)]);
        break;
      }
      case 'tsize':
        // In a read request the client sends 0 and the server answers with the size.
        if (integer(value, 0, Number.MAX_SAFE_INTEGER) === undefined) {
          result.ignored.push(key);
          break;
        }
        result.oack.push([name, String(fileSize)]);
        break;
      case 'timeout': {
        // RFC 2349 lets the server echo the value or ignore the option, never
        // counter-propose: one above the limit is left out of the OACK, and the
        // client keeps its own timer while ours stays at the default.
        const n = integer(value, 1, limits.maxTimeoutSeconds);
        if (n === undefined) {
          result.ignored.push(key);
          break;
        }
        result.timeoutMs = n * 1000;
        result.oack.push([name, String(n)]);
        break;
      }
      case 'windowsize': {
        const n = integer(value, 1, 65535);
        if (n === undefined) {
          result.ignored.push(key);
          break;
        }
        result.windowSize = Math.min(n, limits.maxWindowSize);
        result.oack.push([name, String(result.windowSize)]);
        break;
      }
      default:
        break;
    }
  }
  return result;
}
