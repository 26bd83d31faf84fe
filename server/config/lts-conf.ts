// lts.conf (LTSP5) import: parse the INI file and evaluate it for one client with
// LTSP5's rules (docs/protocol-notes.md §6.1, getltscfg.c), so an LTSP user can bring
// the file as is. Pure functions: the caller reads the file and reports errors.
//
// Evaluation for a client with IDs (hostname, IP, MAC):
//   [default] first, then every glob section matching any ID (fnmatch, case-folded)
//   with its LIKE chain, then the LIKE chain of the exact section, then the exact
//   section itself: the first ID (in the order hostname, IP, MAC) that names a
//   section exactly. Later assignments win; the value NONE unsets a variable.
//   Keys are output upper-cased.

interface LtsSection {
  /** The header as written, e.g. "Default", "52:54:00:00:00:01", "192.168.0.*". */
  name: string;
  line: number;
  entries: Array<{ key: string; value: string; line: number }>;
}

export interface LtsConfFile {
  sections: LtsSection[];
}

interface LtsParseProblem {
  line: number;
  message: string;
}

export type LtsParseResult = { ok: true; file: LtsConfFile } | { ok: false; problems: LtsParseProblem[] };

const SECTION = /^\[([^\]]+)\]\s*$/;
const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/;

/** Strips one pair of matching quotes, as LTSP's parser does. */
function unquote(raw: string): string {
  const value = raw.trim();
  if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value[value.length - 1] === value[0]) return value.slice(1, -1);
  return value;
}

export function parseLtsConf(text: string): LtsParseResult {
  const sections: LtsSection[] = [];
  const problems: LtsParseProblem[] = [];
  let current: LtsSection | undefined;
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = index + 1;
    const trimmed = rawLine.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    const header = SECTION.exec(trimmed);
    if (header) {
      current = { name: (header[1] as string).trim(), line, entries: [] };
      sections.push(current);
      return;
    }
    const assignment = ASSIGNMENT.exec(trimmed);
    if (!assignment) {
      problems.push({ line, message: `expected "[section]", "KEY = value" or a # comment, got ${JSON.stringify(trimmed.slice(0, 60))}` });
      return;
    }
    if (!current) {
      problems.push({ line, message: `expected a section header such as [Default] before ${assignment[1]}` });
      return;
    }
    current.entries.push({ key: (assignment[1] as string).toUpperCase(), value: unquote(assignment[2] as string), line });
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, file: { sections } };
}

/** fnmatch(3) with * ? and [...] classes, case-folded (LTSP compares IDs case-insensitively). */
export function globMatches(pattern: string, text: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`${re}$`, 'i').test(text);
}

const isGlob = (name: string) => /[*?[]/.test(name);

export interface LtsClientIds {
  hostname: string;
  ip: string | undefined;
  mac: string;
}

/**
 * The variables lts.conf gives one client, in application order resolved: a map
 * of upper-case key to value (NONE already removed).
 */
export function evaluateLtsConf(file: LtsConfFile, ids: LtsClientIds): Map<string, string> {
  const byName = new Map<string, LtsSection>();
  for (const section of file.sections) {
    const key = section.name.toLowerCase();
    if (!byName.has(key)) byName.set(key, section);
  }
  const idList = [ids.hostname, ids.ip, ids.mac]
    .filter((id): id is string => typeof id === 'string' && id.length > 0)
    .map((id) => id.toLowerCase());
  const order: LtsSection[] = [];
  const seen = new Set<LtsSection>();
  // A section's LIKE chain is applied before the section itself; cycles stop at
  // the first repeat.
  const withLikeChain = (section: LtsSection): void => {
    if (seen.has(section)) return;
    seen.add(section);
    const like = section.entries.filter((e) => e.key === 'LIKE').map((e) => byName.get(e.value.toLowerCase()));
    for (const parent of like) if (parent) withLikeChain(parent);
    order.push(section);
  };
  const defaults = byName.get('default');
  if (defaults) withLikeChain(defaults);
  for (const section of file.sections) {
    if (isGlob(section.name) && idList.some((id) => globMatches(section.name, id))) withLikeChain(section);
  }
  const exactId = idList.find((id) => byName.has(id) && !isGlob(id));
  if (exactId) withLikeChain(byName.get(exactId) as LtsSection);

  const vars = new Map<string, string>();
  for (const section of order) {
    for (const { key, value } of section.entries) {
      if (key === 'LIKE') continue;
      if (value.toUpperCase() === 'NONE') vars.delete(key);
      else vars.set(key, value);
    }
  }
  return vars;
}
