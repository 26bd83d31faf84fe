// More of the configuration loader's decisions (server/config/load.ts), beside
// config-load.test.ts: values of the wrong kind where a section or a list was
// expected, a subnet range of the wrong length, and the refusals and resolved
// values the mutation run found unasserted. In-process over files in a
// temporary directory; each refusal is checked as `line:column key: message`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../server/config/load.js';
import { ConfigError, type ConfigProblem } from '../../server/config/errors.js';
import type { ResolvedConfig } from '../../server/config/types.js';

// The tier's testTimeout is 20 s; each test states its own deadline too.
const T = 20_000;
const BASE = 'server: { address: 10.9.0.1, stateDir: state }\n';

let dir = '';
let cfgPath = '';

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-config-load-more-'));
  cfgPath = path.join(dir, 'bootfarm.yaml');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function parse(text: string): ResolvedConfig {
  return parseConfig(text, cfgPath);
}

/** The problems a text is refused with; fails the test when it is accepted or throws anything else. */
function refusal(text: string): ConfigProblem[] {
  try {
    parseConfig(text, cfgPath);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

/** One line per problem: `line:column key: message`, after checking every problem names the configuration file. */
function lines(text: string): string[] {
  const problems = refusal(text);
  for (const p of problems) expect(p.file).toBe(cfgPath);
  return problems.map((p) => `${p.line}:${p.column} ${p.key}: ${p.message}`);
}

describe('config loader: a value of the wrong kind where a section or a list belongs', () => {
  it(
    'a scalar or a list for a section, a mapping for a list, a scalar for a list item: "expected a mapping" or "a list"',
    () => {
      expect(lines(`${BASE}dhcp: off\n`)).toEqual(['2:7 dhcp: expected a mapping, got "off"']);
      expect(lines('server: off\n')).toEqual(['1:9 server: expected a mapping, got "off"']);
      expect(lines(`${BASE}dhcp: [mode]\n`)).toEqual(['2:7 dhcp: expected a mapping, got a list']);
      expect(lines(`${BASE}tftp: 5\n`)).toEqual(['2:7 tftp: expected a mapping, got 5']);
      expect(lines(`${BASE}nodes: { a: 1 }\n`)).toEqual(['2:8 nodes: expected a list, got a mapping']);
      expect(lines(`${BASE}nodes: [5]\n`)).toEqual(['2:9 nodes[0]: expected a mapping, got 5']);
      expect(lines(`${BASE}store: { backend: etcd, etcd: true }\n`)).toEqual(['2:31 store.etcd: expected a mapping, got true']);
    },
    T,
  );
});

describe('config loader: subnet ranges', () => {
  it(
    'a range of three addresses is refused with the count; two are the range',
    () => {
      expect(lines(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.5, 10.9.0.6, 10.9.0.7] }] }\n`)).toEqual([
        '2:60 dhcp.subnets[0].range: expected [first, last] addresses of the dynamic pool, got 3 addresses',
      ]);
      expect(
        parse(`${BASE}dhcp: { mode: proxy, subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.5, 10.9.0.7] }] }\n`).dhcp.subnets[0],
      ).toMatchObject({ rangeStart: 0x0a090005, rangeEnd: 0x0a090007 });
    },
    T,
  );
});
