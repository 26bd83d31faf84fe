// `sort -V` order (GNU coreutils filevercmp, which compares like dpkg's
// verrevcmp): LTSP applies each family of PREINIT_*, FSTAB_*, RCFILE_* keys in
// this order, so PREINIT_2 runs before PREINIT_10. Our keys have no file-name
// suffixes, so verrevcmp plus the byte-order tie-break is the whole algorithm.

const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;
const isAlpha = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** Weight of a non-digit character: end and digits 0, '~' before everything, letters before other bytes. */
function order(s: string, i: number): number {
  if (i >= s.length) return 0;
  const c = s.charCodeAt(i);
  if (isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1;
  return c + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const diff = order(a, i) - order(b, j);
      if (diff !== 0) return diff;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    let firstDiff = 0;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

export function compareVersionSort(a: string, b: string): number {
  const v = verrevcmp(a, b);
  if (v !== 0) return v;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function versionSorted(keys: Iterable<string>): string[] {
  return [...keys].sort(compareVersionSort);
}
