// compareVersionSort is GNU `sort -V` for lts.conf keys: checked against the real
// sort(1) on a corpus that crosses every class boundary the comparison has
// (digits, leading zeros, letters at A/Z/a/z, the bytes around them, '~', ends).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { compareVersionSort, versionSorted } from '../../server/config/version-sort.js';

const CORPUS = [
  'RCFILE_1',
  'RCFILE_01',
  'RCFILE_001',
  'RCFILE_10',
  'RCFILE_2',
  'RCFILE_2a',
  'RCFILE_2A',
  'RCFILE_2_',
  'RCFILE_2~',
  'RCFILE_02',
  'RCFILE',
  'RCFILE_',
  'RCFILE~',
  'RCFILE_~1',
  'a',
  'A',
  'z',
  'Z',
  '@',
  '[',
  '`',
  '{',
  '_',
  '~',
  'a~',
  'a@',
  'a[',
  'a`',
  'a{',
  'aZ',
  'aA',
  'az',
  'a1b',
  'a1a',
  'a01b',
  'a1b2',
  'a1b10',
  'a1b02',
  '1',
  '01',
  '10',
  '9',
  '009',
  'x9y',
  'x10y',
  'x9',
  'x10',
  'x',
  'x0',
  'x00',
  'x0a',
  'x12y',
  'x21y',
  '12',
  '21',
  '123',
  '132',
  'PREINIT_2_MODULES',
  'PREINIT_10_MARK',
  'PREINIT_00_TIME',
  'PREINIT_01_FIX_HOSTNAME',
  'PREINIT_1',
  'PREINIT_1_',
  'PREINIT_1a',
  // bytes below '0' ('.', '-') end a digit run: a1.2 before a12
  'a1.2',
  'a12',
  'a1-9',
];

function gnuSortV(keys: string[]): string[] {
  return execFileSync('sort', ['-V'], { input: `${keys.join('\n')}\n`, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
    .split('\n')
    .slice(0, -1);
}

describe('sort -V order', () => {
  it('orders a corpus across every character class exactly as GNU sort -V does', () => {
    expect(versionSorted(CORPUS)).toEqual(gnuSortV(CORPUS));
  });

  it('is a consistent comparison: antisymmetric, zero only for equal strings', () => {
    for (const a of CORPUS) {
      for (const b of CORPUS) {
        const ab = Math.sign(compareVersionSort(a, b)) || 0;
        expect(ab, `${a} ${b}`).toBe(-Math.sign(compareVersionSort(b, a)) || 0);
        if (a !== b) expect(ab, `${a} ${b}`).not.toBe(0);
      }
    }
    expect(compareVersionSort('a1', 'a1')).toBe(0);
  });

  it('sorts any iterable into a new array, leaving the input as it was', () => {
    const keys = new Set(['b10', 'b9', 'a']);
    expect(versionSorted(keys)).toEqual(['a', 'b9', 'b10']);
    const list = ['b', 'a'];
    expect(versionSorted(list)).toEqual(['a', 'b']);
    expect(list).toEqual(['b', 'a']);
  });
});
