// The import-cycle lint rule (lint/no-import-cycle.ts) over a small tree it makes
// in a temporary folder: a circle closed by an `import type` on one side is still
// a circle (import-x/no-cycle would let it through), a file that only imports into
// a circle is not on it, a three-file ring is reported with its whole way round,
// and with `folderDepth` two folders that import each other are a circle even
// when no two files are.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootfarmPlugin } from '../../lint/no-import-cycle.js';

const TREE: Record<string, string> = {
  'package.json': '{ "type": "module" }\n',
  'tsconfig.json': JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, verbatimModuleSyntax: true },
    include: ['**/*.ts'],
  }),
  // lab.ts needs the attacker at run time; the attacker needs only lab.ts's type.
  'lab/lab.ts':
    "import { Attacker } from './attacker.js';\nexport interface Event { at: number }\nexport const attacker = new Attacker();\n",
  'lab/attacker.ts': "import type { Event } from './lab.js';\nexport class Attacker { seen: Event[] = []; }\n",
  'lab/runner.ts': "import { attacker } from './lab.js';\nexport const seen = attacker.seen;\n",
  'ring/a.ts': "import { b } from './b.js';\nexport const a = (): number => b() + 1;\n",
  'ring/b.ts': "import { c } from './c.js';\nexport const b = (): number => c() + 1;\n",
  'ring/c.ts': "export { a as again } from './a.js';\nexport const c = (): number => 1;\n",
  // dhcp/ -> boot/ through one pair of files, boot/ -> dhcp/ through another.
  'dhcp/wire.ts': 'export const MAGIC = 0x63825363;\n',
  'dhcp/service.ts': "import { planBoot } from '../boot/policy.js';\nexport const reply = planBoot();\n",
  'boot/policy.ts': "export function planBoot(): string { return 'ipxe'; }\n",
  'boot/identity.ts': "import { MAGIC } from '../dhcp/wire.js';\nexport const cookie = MAGIC;\n",
};

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-lint-cycle-'));
  for (const [name, text] of Object.entries(TREE)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Every report of the rule, as "file:line message", sorted. */
async function cycles(options: { folderDepth?: number } = {}): Promise<string[]> {
  const eslint = new ESLint({
    cwd: dir,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser, parserOptions: { projectService: true, tsconfigRootDir: dir } },
        plugins: { bootfarm: bootfarmPlugin },
        rules: { 'bootfarm/no-import-cycle': ['error', options] },
      },
    ],
  });
  const results = await eslint.lintFiles(['.']);
  return results.flatMap((r) => r.messages.map((m) => `${path.relative(dir, r.filePath)}:${m.line} ${m.message}`)).sort();
}

describe('no-import-cycle', () => {
  it('reports file circles, type-only edges included, on each import that closes one', async () => {
    expect(await cycles()).toEqual([
      'lab/attacker.ts:1 Import cycle: lab/attacker.ts -> lab/lab.ts -> lab/attacker.ts',
      'lab/lab.ts:1 Import cycle: lab/lab.ts -> lab/attacker.ts -> lab/lab.ts',
      'ring/a.ts:1 Import cycle: ring/a.ts -> ring/b.ts -> ring/c.ts -> ring/a.ts',
      'ring/b.ts:1 Import cycle: ring/b.ts -> ring/c.ts -> ring/a.ts -> ring/b.ts',
      'ring/c.ts:1 Import cycle: ring/c.ts -> ring/a.ts -> ring/b.ts -> ring/c.ts',
    ]);
  });

  it('with folderDepth, reports folders that import each other and nothing inside one folder', async () => {
    expect(await cycles({ folderDepth: 1 })).toEqual([
      'boot/identity.ts:1 Import cycle: boot -> dhcp -> boot',
      'dhcp/service.ts:1 Import cycle: dhcp -> boot -> dhcp',
    ]);
  });
});
