// The docs say only what the repository has: every file they cite or link to exists (and every heading a link
// names), and every DNFT_* environment variable they name is read somewhere in the code (docs/distributed.md once
// named a DNFT_THREADS that nothing read).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DOCS = [
  'README.md',
  'bench/NOTES.md',
  'reference/README.md',
  ...readdirSync('docs')
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f)),
];

// A cited path starts at the repository's root or, for the native sources, at native/.
const ROOTS = ['lib', 'native', 'test', 'bench', 'docs', 'scripts', 'reference', 'models', '.ci'];
const NATIVE = ['core', 'cpu', 'cuda', 'addon', 'mpi', 'tests'];
const CITED = /`((?:\.?[\w-]+\/)+[\w.-]+\.(?:ts|md|cpp|h|cu|cuh|py|sh|json|mjs|js|def|png|safetensors))`/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'results' ? [] : sources(path);
    return /\.(ts|mjs|js|cpp|h|cu|cuh|sh|py)$/.test(e.name) ? [path] : [];
  });
}

describe('the docs', () => {
  it('cite only files that exist', () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      for (const [, path] of readFileSync(doc, 'utf8').matchAll(CITED)) {
        const first = (path as string).split('/')[0] as string;
        const candidate = ROOTS.includes(first) ? path : NATIVE.includes(first) ? join('native', path as string) : null;
        if (candidate !== null && !existsSync(candidate as string)) missing.push(`${doc}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('link to files and headings that exist', () => {
    // GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
    const slug = (heading: string) =>
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-');
    const broken: string[] = [];
    for (const doc of DOCS) {
      for (const [, target] of readFileSync(doc, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target as string)) continue; // https:, mailto:
        const [path, anchor] = (target as string).split('#') as [string, string | undefined];
        const file = path === '' ? doc : join(dirname(doc), path);
        if (!existsSync(file)) {
          broken.push(`${doc}: ${target}`);
        } else if (anchor !== undefined) {
          const headings = [...readFileSync(file, 'utf8').matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1] as string));
          if (!headings.includes(anchor)) broken.push(`${doc}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('name only DNFT_* environment variables that the code reads', () => {
    const code = ['lib', 'native', 'scripts', 'bench', 'test']
      .flatMap(sources)
      .filter((f) => f !== join('test', 'docs.test.ts'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const unread = new Set<string>();
    for (const doc of DOCS) {
      for (const [name] of readFileSync(doc, 'utf8').matchAll(/\bDNFT_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!code.includes(name)) unread.add(`${doc}: ${name}`);
      }
    }
    expect([...unread]).toEqual([]);
  });
});
