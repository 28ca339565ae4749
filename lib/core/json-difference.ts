// Where two JSON values first differ, for messages that name the option or field that differs (a run's options
// between MPI ranks, lib/training/distributed.ts; a checkpoint's options against a resume's, lib/training/resume-check.ts).

/** JSON of a value, cut to 80 characters. */
const shown = (value: unknown) => {
  const text = JSON.stringify(value) ?? 'nothing';
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
};

/** The first place where two JSON values differ: its path (`a.b[2]`) and the value there on each side. */
export function jsonDifference(a: unknown, b: unknown, path = ''): { path: string; a: string; b: string } | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  const objects = a !== null && b !== null && typeof a === 'object' && typeof b === 'object';
  if (!objects || Array.isArray(a) !== Array.isArray(b)) return { path, a: shown(a), b: shown(b) };
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  for (const key of keys) {
    const at = Array.isArray(a) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
    const found = jsonDifference((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], at);
    if (found !== undefined) return found;
  }
  return { path, a: shown(a), b: shown(b) };
}
