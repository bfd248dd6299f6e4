/** docs/README.md indexes every document in docs/, and every link in it leads to a file that exists. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ROOT } from '../../scripts/processes.ts';

const DOCS = join(ROOT, 'docs');
const index = readFileSync(join(DOCS, 'README.md'), 'utf8');
const linked = [...index.matchAll(/\]\(([^)#]+)\)/g)].map((m) => m[1] ?? '');

describe('docs/README.md', () => {
  it('lists every document of docs/', () => {
    const documents = readdirSync(DOCS).filter((f) => f.endsWith('.md') && f !== 'README.md');
    expect(documents.filter((d) => !linked.includes(d))).toEqual([]);
  });

  it('links only to files that exist', () => {
    expect(linked.filter((target) => !existsSync(join(DOCS, target)))).toEqual([]);
  });
});
