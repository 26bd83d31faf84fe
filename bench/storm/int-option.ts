// The storm scripts' integer options (bench/storm/run.ts, clients.ts): a value
// outside its range stops the script naming the option and what was expected.
export function intOption(name: string, raw: string | boolean | undefined, min: number, max: number): number {
  const v = typeof raw === 'string' ? Number(raw) : NaN;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new Error(`--${name}: expected an integer from ${min} to ${max}, got ${String(raw)}`);
  }
  return v;
}
