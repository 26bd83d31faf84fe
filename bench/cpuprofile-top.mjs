// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and
// inclusive time for a few functions of interest, as shares of all samples.
//
//   node bench/cpuprofile-top.mjs FILE.cpuprofile [N] [T0 T1]
//
// T0 T1: only samples taken between these CLOCK_MONOTONIC times in seconds (V8's
// profile timestamps use the same clock as python's time.monotonic(), so bench-tftp's
// t_start/t_end select exactly the measured transfer, without start-up and warm-up).
//
// Self time: samples whose top frame is the function. Inclusive: samples with the
// function anywhere on the stack (counted once per sample). "(idle)" is the event
// loop waiting in epoll; "(program)" is native code V8 cannot attribute (libuv,
// syscalls, the C++ side of dgram); "(garbage collector)" is GC.
import { readFileSync } from 'node:fs';

const [file, nArg, t0Arg, t1Arg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/cpuprofile-top.mjs FILE.cpuprofile [N]');
  process.exit(2);
}
const top = Number(nArg ?? 30);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n) => {
  const cf = n.callFrame;
  const url = cf.url ? cf.url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:') : '';
  return `${cf.functionName || '(anonymous)'} ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
};

const counts = new Map();
const t0 = t0Arg === undefined ? -Infinity : Number(t0Arg) * 1e6;
const t1 = t1Arg === undefined ? Infinity : Number(t1Arg) * 1e6;
let ts = prof.startTime;
let total = 0;
let first = Infinity;
let last = -Infinity;
prof.samples.forEach((id, i) => {
  ts += prof.timeDeltas[i];
  if (ts < t0 || ts > t1) return;
  counts.set(id, (counts.get(id) ?? 0) + 1);
  total++;
  first = Math.min(first, ts);
  last = Math.max(last, ts);
});
const self = new Map();
const incl = new Map();
for (const [id, c] of counts) {
  const n = byId.get(id);
  const l = label(n);
  self.set(l, (self.get(l) ?? 0) + c);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const lab = label(byId.get(cur));
    if (seen.has(lab)) continue;
    seen.add(lab);
    incl.set(lab, (incl.get(lab) ?? 0) + c);
  }
}
const idle = self.get('(idle)') ?? 0;
const busy = total - idle;
const dur = total ? (last - first) / 1e6 : 0;
console.log(
  `${file}: ${total} samples over ${dur.toFixed(2)} s, idle ${((100 * idle) / total).toFixed(1)} %; shares below are of the ${busy} non-idle samples`,
);
console.log('\nself time:');
for (const [l, c] of [...self]
  .filter(([l]) => l !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  console.log(`${((100 * c) / busy).toFixed(1).padStart(6)} %  ${l}`);
}
console.log('\ninclusive (top, excluding (root)):');
for (const [l, c] of [...incl]
  .filter(([l]) => l !== '(root)' && l !== '(idle)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, top)) {
  console.log(`${((100 * c) / busy).toFixed(1).padStart(6)} %  ${l}`);
}
