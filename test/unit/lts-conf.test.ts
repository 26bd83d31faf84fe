// lts.conf parsing and evaluation, rule by rule (server/config/lts-conf.ts;
// LTSP5's getltscfg.c): what is a header, an assignment, a comment or a
// problem; quotes; fnmatch globs; section order, LIKE chains and NONE.
import { describe, expect, it } from 'vitest';
import { evaluateLtsConf, globMatches, parseLtsConf, type LtsClientIds, type LtsConfFile } from '../../server/config/lts-conf.js';

function parsed(text: string): LtsConfFile {
  const r = parseLtsConf(text);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.file;
}
const problems = (text: string) => {
  const r = parseLtsConf(text);
  return r.ok ? [] : r.problems;
};
const ids: LtsClientIds = { hostname: 'node-1', ip: '10.0.0.5', mac: '52:54:00:00:00:01' };
const vars = (text: string, who: LtsClientIds = ids) => Object.fromEntries(evaluateLtsConf(parsed(text), who));

describe('lts.conf parsing', () => {
  it('headers, assignments with or without spaces, comments, blank lines and CRLF', () => {
    expect(
      parsed('# c\r\n; c\r\n\r\n  [ Default ]  \r\nkey=v\r\n  Other_1  =   spaced value  \r\nX = a=b # not a comment\n').sections,
    ).toEqual([
      {
        name: 'Default',
        line: 4,
        entries: [
          { key: 'KEY', value: 'v', line: 5 },
          { key: 'OTHER_1', value: 'spaced value', line: 6 },
          { key: 'X', value: 'a=b # not a comment', line: 7 },
        ],
      },
    ]);
  });

  it('strips one pair of matching quotes only', () => {
    const values = parsed(`[d]\nA = "x y"\nB = 'x'\nC = "x'\nD = "\nE = ""\nF = "a"b"\nG = x"\n`).sections[0]?.entries.map((e) => e.value);
    expect(values).toEqual(['x y', 'x', '"x\'', '"', '', 'a"b', 'x"']);
  });

  it('names the line and what was expected for anything else', () => {
    expect(problems('[d]\n[x]trailing\n')).toEqual([
      { line: 2, message: 'expected "[section]", "KEY = value" or a # comment, got "[x]trailing"' },
    ]);
    expect(problems('[d]\n[x] trailing\nx[d]\n1KEY = v\nKEY : v\n')).toEqual([
      { line: 2, message: 'expected "[section]", "KEY = value" or a # comment, got "[x] trailing"' },
      { line: 3, message: 'expected "[section]", "KEY = value" or a # comment, got "x[d]"' },
      { line: 4, message: 'expected "[section]", "KEY = value" or a # comment, got "1KEY = v"' },
      { line: 5, message: 'expected "[section]", "KEY = value" or a # comment, got "KEY : v"' },
    ]);
    expect(problems(`KEY = v\n${'y'.repeat(80)}\n`)).toEqual([
      { line: 1, message: 'expected a section header such as [Default] before KEY' },
      { line: 2, message: `expected "[section]", "KEY = value" or a # comment, got "${'y'.repeat(60)}"` },
    ]);
  });
});

describe('fnmatch globs', () => {
  it.each([
    ['10.0.0.*', '10.0.0.5', true],
    ['10.0.0.*', '10.0.1.5', false],
    ['10.0.0.?', '10.0.0.5', true],
    ['10.0.0.?', '10.0.0.55', false],
    ['node-[12]', 'node-1', true],
    ['node-[12]', 'node-3', false],
    ['node-[!12]', 'node-3', true],
    ['node-[!12]', 'node-1', false],
    ['node-[!12]', 'node-!', true],
    ['][a]', ']a', true],
    ['node-[0-9]', 'node-7', true],
    ['[abc', '[abc', true],
    ['[abc', 'a', false],
    ['a.c', 'abc', false],
    ['a+c', 'a+c', true],
    ['NODE-*', 'node-1', true],
    ['node', 'xnode', false],
    ['node', 'nodex', false],
    ['a[\\]b', 'a\\b', true],
    ['x(y)|z', 'x(y)|z', true],
  ])('%s against %s is %s', (pattern, text, expected) => {
    expect(globMatches(pattern, text)).toBe(expected);
  });
});

describe('lts.conf evaluation', () => {
  it('applies default, then matching globs in file order, then the exact section; later wins; NONE unsets', () => {
    expect(
      vars(
        '[52:54:00:00:00:01]\nA = mac\n[10.0.0.*]\nA = glob\nB = glob\nC = glob\n[default]\nA = d\nB = d\nD = d\nE = d\n[node-?]\nC = glob2\nE = none\n',
      ),
    ).toEqual({
      A: 'mac',
      B: 'glob',
      C: 'glob2',
      D: 'd',
    });
  });

  it('the exact section is the first ID that names one: hostname, then IP, then MAC, case-folded', () => {
    const text = '[52:54:00:00:00:01]\nA = mac\n[10.0.0.5]\nA = ip\n[NODE-1]\nA = host\n';
    expect(vars(text)).toEqual({ A: 'host' });
    expect(vars(text, { ...ids, hostname: 'other' })).toEqual({ A: 'ip' });
    expect(vars(text, { hostname: 'other', ip: undefined, mac: '52:54:00:00:00:01' })).toEqual({ A: 'mac' });
    expect(vars(text, { hostname: 'other', ip: '', mac: 'aa:bb:cc:dd:ee:ff' })).toEqual({});
    // A blank header is a section named "", which no (absent) ID names.
    expect(vars('[ ]\nA = blank\n', { hostname: 'other', ip: '', mac: 'aa:bb:cc:dd:ee:ff' })).toEqual({});
    // An empty ID is no ID: not even [*] (which matches "") applies to a client with none.
    expect(vars('[*]\nA = any\n', { hostname: '', ip: '', mac: '' })).toEqual({});
  });

  it('a LIKE chain is applied before its section, is not itself a variable, and stops at a cycle', () => {
    expect(vars('[node-1]\nLIKE = Base\nA = own\n[base]\nLIKE = node-1\nA = base\nB = base\n')).toEqual({ A: 'own', B: 'base' });
    expect(vars('[default]\nLIKE = missing\nA = d\n')).toEqual({ A: 'd' });
    // Only LIKE chains: another variable whose value names a section does not.
    expect(vars('[node-1]\nA = base\n[base]\nB = base\n')).toEqual({ A: 'base' });
  });

  it('the first of two sections with one name counts; a glob-looking ID is never an exact section', () => {
    expect(vars('[node-1]\nA = first\n[NODE-1]\nA = second\n')).toEqual({ A: 'first' });
    expect(vars('[n*]\nA = glob\n', { hostname: 'n*', ip: undefined, mac: 'x' })).toEqual({ A: 'glob' });
  });
});
