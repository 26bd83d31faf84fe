// ESLint rule: no import cycles between this tree's files, or, with `folderDepth`,
// between its folders (server/dhcp <-> server/boot). Unlike import-x/no-cycle it
// counts `import type` too: a type-only edge is still an arrow between layers, and
// the circles issue 18 names (config/load.ts <-> inventory/effective.ts,
// server/lab/attacker.ts <-> server/lab/lab.ts) were type-only on one side.
//
// The import graph comes from the TypeScript program typescript-eslint already
// built for the type-aware rules, resolved with that program's compiler options,
// so `./x.js` finds `./x.ts` exactly as tsc does. The graph and its strongly
// connected components are computed once per program; each import whose target
// sits in its own file's component is reported with one way round the circle.
import path from 'node:path';
import type { Rule } from 'eslint';
import ts from 'typescript';

interface Options {
  /** Count folders cut to this many path segments as the nodes (2: server/dhcp), not files. */
  folderDepth?: number;
}

interface Graph {
  /** Node -> id of its strongly connected component, only for components of two or more nodes. */
  componentOf: Map<string, number>;
  edges: Map<string, Set<string>>;
  /** The node an import specifier in `from` lands on; undefined outside the tree. */
  resolve: (from: string, spec: string) => string | undefined;
}

/** The statements that name a module: import, export ... from, export * from. */
type ModuleStatement = Parameters<
  NonNullable<Rule.NodeListener['ImportDeclaration' | 'ExportNamedDeclaration' | 'ExportAllDeclaration']>
>[0];

const graphs = new WeakMap<ts.Program, Map<string, Graph>>();

/** The module specifiers of a file's static imports and re-exports, type-only ones included. */
function specifiersOf(file: ts.SourceFile): string[] {
  const out: string[] = [];
  for (const statement of file.statements) {
    if (
      (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) &&
      statement.moduleSpecifier &&
      ts.isStringLiteral(statement.moduleSpecifier)
    ) {
      out.push(statement.moduleSpecifier.text);
    }
  }
  return out;
}

interface Frame {
  node: string;
  targets: Iterator<string>;
}

/** Tarjan's algorithm, iterative so a long chain of imports cannot overflow the stack. */
function cyclicComponents(edges: Map<string, Set<string>>): Map<string, number> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const componentOf = new Map<string, number>();
  let next = 0;
  let components = 0;
  const enter = (node: string, work: Frame[]): void => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    onStack.add(node);
    work.push({ node, targets: (edges.get(node) ?? new Set<string>()).values() });
  };
  for (const root of edges.keys()) {
    if (index.has(root)) continue;
    const work: Frame[] = [];
    enter(root, work);
    for (let frame = work.at(-1); frame; frame = work.at(-1)) {
      const step = frame.targets.next();
      if (!step.done) {
        const target = step.value;
        if (!index.has(target)) enter(target, work);
        else if (onStack.has(target)) low.set(frame.node, Math.min(low.get(frame.node)!, index.get(target)!));
        continue;
      }
      work.pop();
      const parent = work.at(-1);
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) !== index.get(frame.node)) continue;
      const members: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        members.push(member);
      } while (member !== frame.node);
      if (members.length > 1) {
        for (const m of members) componentOf.set(m, components);
        components++;
      }
    }
  }
  return componentOf;
}

/** A file's node: its root-relative path, or its folder cut to `folderDepth` segments. */
function nodeName(relative: string, folderDepth: number | undefined): string {
  const segments = relative.split(path.sep);
  if (folderDepth === undefined || segments.length <= folderDepth) return segments.join('/');
  return segments.slice(0, folderDepth).join('/');
}

function insideRoot(relative: string): boolean {
  return !relative.startsWith('..') && !path.isAbsolute(relative);
}

function graphOf(program: ts.Program, root: string, folderDepth: number | undefined): Graph {
  const key = `${root}\0${folderDepth ?? 0}`;
  let perProgram = graphs.get(program);
  if (!perProgram) graphs.set(program, (perProgram = new Map<string, Graph>()));
  const cached = perProgram.get(key);
  if (cached) return cached;

  const options = program.getCompilerOptions();
  const cache = ts.createModuleResolutionCache(root, (name) => name, options);
  const resolve = (from: string, spec: string): string | undefined => {
    const resolved = ts.resolveModuleName(spec, from, options, ts.sys, cache).resolvedModule;
    if (!resolved || resolved.isExternalLibraryImport) return undefined;
    const relative = path.relative(root, resolved.resolvedFileName);
    return insideRoot(relative) ? nodeName(relative, folderDepth) : undefined;
  };
  const edges = new Map<string, Set<string>>();
  for (const file of program.getSourceFiles()) {
    const relative = path.relative(root, file.fileName);
    if (file.isDeclarationFile || program.isSourceFileFromExternalLibrary(file) || !insideRoot(relative)) continue;
    const from = nodeName(relative, folderDepth);
    let targets = edges.get(from);
    if (!targets) edges.set(from, (targets = new Set()));
    for (const spec of specifiersOf(file)) {
      const target = resolve(file.fileName, spec);
      if (target !== undefined && target !== from) targets.add(target);
    }
  }
  const graph = { componentOf: cyclicComponents(edges), edges, resolve };
  perProgram.set(key, graph);
  return graph;
}

/** The shortest way from `start` back to `goal` inside their component, for the message. */
function wayBack(graph: Graph, start: string, goal: string): string[] {
  const component = graph.componentOf.get(start);
  const cameFrom = new Map<string, string>();
  const queue = [start];
  const seen = new Set(queue);
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    for (const target of graph.edges.get(node) ?? []) {
      if (target === goal) {
        const way = [goal, node];
        for (let at = node; at !== start;) {
          at = cameFrom.get(at)!;
          way.push(at);
        }
        return way.reverse();
      }
      if (seen.has(target) || graph.componentOf.get(target) !== component) continue;
      seen.add(target);
      cameFrom.set(target, node);
      queue.push(target);
    }
  }
  return [start, goal];
}

const noImportCycle: Rule.RuleModule = {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid import cycles between files (or folders), type-only imports included' },
    schema: [{ type: 'object', properties: { folderDepth: { type: 'integer', minimum: 1 } }, additionalProperties: false }],
    messages: { cycle: 'Import cycle: {{way}}' },
  },
  create(context) {
    // Plain JavaScript files are linted without a program: nothing to walk.
    const program = (context.sourceCode.parserServices as { program?: ts.Program } | undefined)?.program;
    if (!program) return {};
    const options = (context.options[0] ?? {}) as Options;
    const root = context.cwd;
    const graph = graphOf(program, root, options.folderDepth);
    const self = nodeName(path.relative(root, context.physicalFilename), options.folderDepth);
    const component = graph.componentOf.get(self);
    if (component === undefined) return {};
    const check = (node: ModuleStatement): void => {
      if (typeof node.source?.value !== 'string') return;
      const target = graph.resolve(context.physicalFilename, node.source.value);
      if (target === undefined || target === self || graph.componentOf.get(target) !== component) return;
      context.report({ node: node.source, messageId: 'cycle', data: { way: [self, ...wayBack(graph, target, self)].join(' -> ') } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};

export const bootfarmPlugin = { rules: { 'no-import-cycle': noImportCycle } };
