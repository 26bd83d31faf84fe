// The table `bootfarm lab run` prints: per node, its result and the seconds
// from power-on to each step, then each failure.
import type { NodeResult } from './lab-results.js';
import { STEPS } from './timeline.js';

export function formatSummary(results: NodeResult[]): string {
  const header = ['NODE', 'RESULT', ...STEPS.map((s) => s.toUpperCase())];
  const rows = [
    header,
    ...results.map((r) => [
      r.hostname,
      r.ok ? 'joined' : 'FAILED',
      ...STEPS.map((s) => (r.timeline[s] === undefined ? '-' : `${r.timeline[s]}s`)),
    ]),
  ];
  const widths = header.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  const lines = rows.map((row) =>
    row
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  for (const r of results) if (!r.ok) lines.push('', `${r.hostname}: ${r.failure}`);
  return lines.join('\n');
}
