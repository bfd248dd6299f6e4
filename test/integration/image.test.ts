/**
 * The production image, built here from the Dockerfile with Debian's buildah on a base assembled from the
 * registries (scripts/image/build.ts), and run with podman the way Knative runs the pods: the manifests' limits,
 * read-only root, uid 65532, no capabilities, NODE_OPTIONS from the image (scripts/image/checks.ts). Part of the
 * integration suite wherever podman can run: buildah, podman, runc and wrk are installed from Debian's packages
 * when we are root; otherwise, or when `podman info` fails, every test here is skipped and the reason printed.
 *
 * The keep-alive check here leaves its connections idle ~30 s, for as long as the start and load runs take
 * anyway, and checks the announced timeout (95 s, from the ConfigMap the container got) is above queue-proxy's
 * 90 s: test/integration/conformance.test.ts waits the full 91 s on the same bundles already, and nothing in a
 * host-network container sits between client and server that could cut an idle connection sooner.
 * `npm run image:test` (scripts/image/run.ts) waits the full 91 s. IMAGE_TEST_IDLE_MS overrides.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { buildImage } from '../../scripts/image/build.ts';
import { type ImageReport, runImageChecks } from '../../scripts/image/checks.ts';
import { formatMeasurement, type ImageMeasurement, measureImage } from '../../scripts/image/measure.ts';
import { type CheckGroup, formatReport, verdicts } from '../../scripts/image/report.ts';
import { ensureTools } from '../../scripts/image/tools.ts';

const MB = 1e6;
const tools = ensureTools();
if (!tools.ok) console.warn(`image tests skipped: podman cannot run here: ${tools.reason}`);
const describeImage = tools.ok ? describe : describe.skip;

describeImage('the production image under podman, as a pod', () => {
  let measurement: ImageMeasurement;
  let report: ImageReport;

  beforeAll(async () => {
    const { DATABASE_URL, REDIS_URL, KAFKA_BROKERS } = process.env;
    if (!DATABASE_URL || !REDIS_URL || !KAFKA_BROKERS) {
      throw new Error('DATABASE_URL, REDIS_URL and KAFKA_BROKERS must be set (node scripts/run-tests.ts integration)');
    }
    // dist/ as the suite's `npm run build` left it: rebuilding here would change files other tests are running.
    const built = await buildImage({ bundle: false });
    measurement = measureImage(built.image);
    console.log(`built in ${(built.buildMs / 1000).toFixed(1)} s on ${built.base}\n${formatMeasurement(measurement)}`);
    report = await runImageChecks({
      image: built.image,
      services: { DATABASE_URL, REDIS_URL, KAFKA_BROKERS },
      idleMs: Number(process.env.IMAGE_TEST_IDLE_MS ?? 30_000),
      startRuns: 3,
      loadSeconds: 8,
    });
    console.log(formatReport(report));
  }, 600_000);

  const failing = (group: CheckGroup) => verdicts(report).filter((verdict) => verdict.group === group && !verdict.ok);

  it('holds the Node binary, its libraries, the four bundles and the API page renderer, and nothing else of size', () => {
    expect(measurement.largestFiles[0]?.path).toBe('/nodejs/bin/node');
    // The V8 code caches of ingest and query (dist/.compile-cache, ~0.3 MB each) may rank among the largest too.
    const bundles = measurement.largestFiles
      .filter((file) => file.path.startsWith('/app/') && !file.path.startsWith('/app/dist/.compile-cache/'))
      .map((file) => file.path);
    expect(bundles.sort()).toEqual([
      '/app/dist/docs/swagger-ui-bundle.js',
      '/app/dist/ingest.mjs',
      '/app/dist/migrate.mjs',
      '/app/dist/query.mjs',
      '/app/dist/relay.mjs',
    ]);
    // Guards against a node_modules, source maps or a second runtime slipping in: docs/image.md has the figures.
    expect(measurement.storageBytes).toBeLessThan(150 * MB);
    expect(measurement.gzipBytes).toBeLessThan(60 * MB);
    // The four bundles (≈ 7 MB), swagger-ui-dist's script and style sheet for GET /docs (≈ 1.9 MB) and the code
    // caches of ingest and query (≈ 0.6 MB).
    expect(measurement.groups['bundles (/app/dist)']).toBeLessThan(10 * MB);
  });

  it('runs the migration entry from the image', () => {
    expect(failing('migrate')).toEqual([]);
  });

  it('answers its probes and reaches PostgreSQL, Redis and Kafka from inside the container', () => {
    expect(failing('probes')).toEqual([]);
    expect(failing('round trip')).toEqual([]);
  });

  it('keeps idle keep-alive connections open and reuses them', () => {
    expect(failing('keep-alive')).toEqual([]);
  });

  it('serves a short load without errors, within its memory limit', () => {
    expect(failing('load')).toEqual([]);
    expect(failing('memory')).toEqual([]);
  });

  it('on SIGTERM with requests in flight: not ready, answers every request, exits 0 within the grace period', () => {
    expect(failing('drain')).toEqual([]);
  });
});
