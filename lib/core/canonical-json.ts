// JSON text with the keys of every object sorted, so that two values compare equal whatever order their fields were
// written in (a saved trainer state against the current options, a finished benchmark seed against its sweep).

function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries.map(([k, v]) => [k, sorted(v)]));
}

/** JSON.stringify of `value` with every object's keys in sorted order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sorted(value));
}
