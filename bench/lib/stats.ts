/** Median of a non-empty list (NaN when empty, so that a missing figure shows as "n/a" rather than 0). */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Percentile with linear interpolation between closest ranks (numpy's default), NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

/** Milliseconds as seconds with two decimals, or "n/a". */
export function seconds(ms: number): string {
  return Number.isFinite(ms) ? (ms / 1000).toFixed(2) : 'n/a';
}

export function millis(ms: number, digits = 2): string {
  return Number.isFinite(ms) ? ms.toFixed(digits) : 'n/a';
}

/** A count or rate with thousands separators and `digits` decimals, or "n/a". */
export function num(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a';
}

/**
 * Gaps in ms between consecutive start stamps (`date +%s%N` lines). Stamps are
 * nanoseconds since the epoch, beyond a double's exact range, hence BigInt.
 */
export function stampGaps(text: string): number[] {
  const stamps = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map((l) => BigInt(l))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const gaps: number[] = [];
  for (let i = 1; i < stamps.length; i++) gaps.push(Number(stamps[i]! - stamps[i - 1]!) / 1e6);
  return gaps;
}
