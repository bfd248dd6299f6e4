/** What retention does is decided by configuration and said in one line at start (issue 14). */
import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '#lib/config';
import { describeRetention, partitionPlanFrom } from '#lib/db';

const DATABASE_URL = 'postgres://localhost/data_service_test';

describe('retention plan', () => {
  it('without S3_BUCKET drops days unarchived, and says so', () => {
    const plan = partitionPlanFrom(loadConfig({ DATABASE_URL, RETENTION_DAYS: '30' }, { servesApi: false }));
    expect(plan).toMatchObject({ retentionDays: 30, requireArchive: false });
    expect(describeRetention(plan)).toMatch(
      /^S3_BUCKET is not set: retention drops partitions older than 30 days without archiving them/,
    );
  });

  it('with S3_BUCKET drops only verified archives and keeps their ids', () => {
    const plan = partitionPlanFrom(
      loadConfig({ DATABASE_URL, RETENTION_DAYS: '30', S3_BUCKET: 'cold-records' }, { servesApi: false }),
    );
    expect(plan.requireArchive).toBe(true);
    expect(describeRetention(plan)).toMatch(/only once their S3 archive is verified; their ids stay registered/);
  });

  it('with retention off says that instead', () => {
    expect(
      describeRetention(
        partitionPlanFrom(loadConfig({ DATABASE_URL, S3_BUCKET: 'cold-records' }, { servesApi: false })),
      ),
    ).toMatch(/retention off/);
  });
});
