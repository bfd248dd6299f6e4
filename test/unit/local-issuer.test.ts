/**
 * The local issuer's key stays owner-only, and nothing else does: `.data/` must stay passable for the embedded
 * PostgreSQL, which runs as `postgres` when `npm start` runs as root (a test run that made the key first used to
 * leave `.data/` at 0700, and the next `npm start` failed in initdb with "Permission denied").
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { localIssuer } from '../../scripts/local-issuer.ts';

const root = mkdtempSync(join(tmpdir(), 'local-issuer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('localIssuer', () => {
  it('creates the key owner-only in an owner-only folder, and leaves the data folder above it passable', async () => {
    const data = join(root, '.data');
    const file = join(data, 'auth', 'issuer-key.json');
    const issuer = await localIssuer(file);
    expect(await issuer.sign({ subject: 'someone' })).toMatch(/^ey/);
    // The data folder gets what any folder made here gets (the umask decides), not the key folder's 0700.
    const plain = join(root, 'plain');
    mkdirSync(plain);
    expect({ key: modeOf(file), auth: modeOf(join(data, 'auth')), data: modeOf(data) }).toEqual({
      key: 0o600,
      auth: 0o700,
      data: modeOf(plain),
    });
    expect(modeOf(plain)).not.toBe(0o700);
  });
});
