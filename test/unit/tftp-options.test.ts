// Option negotiation as it goes on the wire: the OACK bytes for the values
// hostile or greedy clients ask for (blksize above tftp.maxBlockSize, timeout
// above tftp.maxTimeoutSeconds, windowsize above tftp.maxWindowSize).
import { describe, expect, it } from 'vitest';
import { negotiate, type TftpLimits } from '../../server/tftp/options.js';
import { encodeOack } from '../../server/tftp/packet.js';

const limits: TftpLimits = { maxBlockSize: 1468, maxWindowSize: 64, defaultTimeoutMs: 1000, maxTimeoutSeconds: 5 };
const wire = (...strings: string[]) => Buffer.concat([Buffer.from([0, 6]), ...strings.map((s) => Buffer.from(`${s}\0`, 'latin1'))]);

describe('TFTP option negotiation', () => {
  it('clamps blksize and windowsize, OACKs tsize, and ignores a timeout above the limit (exact OACK bytes)', () => {
    const n = negotiate(
      [
        ['BlkSize', '65464'],
        ['tsize', '0'],
        ['timeout', '255'],
        ['windowsize', '65535'],
      ],
      123456,
      limits,
    );
    expect(encodeOack(n.oack)).toEqual(wire('BlkSize', '1468', 'tsize', '123456', 'windowsize', '64'));
    expect(n).toMatchObject({ blockSize: 1468, windowSize: 64, timeoutMs: 1000, ignored: ['timeout'] });
  });

  it('grants blksize exactly tftp.maxBlockSize and one byte above it as the maximum', () => {
    for (const asked of ['1469', '9000', '65464']) {
      const n = negotiate([['blksize', asked]], 10, { ...limits, maxBlockSize: 1024 });
      expect(encodeOack(n.oack), asked).toEqual(wire('blksize', '1024'));
      expect(n.blockSize).toBe(1024);
    }
    expect(encodeOack(negotiate([['blksize', '1000']], 10, { ...limits, maxBlockSize: 1024 }).oack)).toEqual(wire('blksize', '1000'));
  });

  it('echoes a timeout within tftp.maxTimeoutSeconds and uses it', () => {
    const n = negotiate(
      [
        ['timeout', '5'],
        ['timeout', '200'],
      ],
      10,
      limits,
    );
    expect(encodeOack(n.oack)).toEqual(wire('timeout', '5'));
    expect(n.timeoutMs).toBe(5000);
  });

  it('ignores a timeout above the limit even when it is valid per RFC 2349: no OACK at all when nothing else was asked', () => {
    for (const asked of ['6', '255']) {
      const n = negotiate([['timeout', asked]], 10, limits);
      expect(n.oack, asked).toEqual([]);
      expect(n.timeoutMs).toBe(1000);
      expect(n.ignored).toEqual(['timeout']);
    }
  });

  it('ignores out-of-range and malformed values, duplicates and unknown options, and an option flood', () => {
    const flood: Array<[string, string]> = [];
    for (let i = 0; i < 2000; i++) flood.push([i % 2 ? 'BLKSIZE' : `x${i}\u00ff`, String(i)]);
    const n = negotiate([['blksize', '7'], ['tsize', '-1'], ['timeout', '0'], ['windowsize', '0'], ...flood], 10, limits);
    expect(n.oack).toEqual([]);
    expect(n).toMatchObject({ blockSize: 512, windowSize: 1, timeoutMs: 1000 });
    expect(n.ignored).toEqual(['blksize', 'tsize', 'timeout', 'windowsize']);
  });

  it('takes only plain decimal digits: exponent, hex, sign and padded values are ignored, not read as numbers', () => {
    for (const asked of ['1e3', '0x200', '+512', ' 512', '512 ', '512.0']) {
      const n = negotiate([['blksize', asked]], 10, limits);
      expect(n.oack, asked).toEqual([]);
      expect(n.blockSize, asked).toBe(512);
      expect(n.ignored, asked).toEqual(['blksize']);
    }
  });
});
