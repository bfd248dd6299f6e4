/** The local runner's pure parts (scripts/load/): settings and bounds, vegeta targets, the wrk script. */
import { describe, expect, it } from '@jest/globals';
import { createRng } from '../../load-tests/lib/prng.ts';
import {
  createMixedStream,
  createRequestIds,
  DEFAULT_MIX,
  prefillRecords,
  recordOptionsOf,
  take,
} from '../../load-tests/lib/requests.ts';
import { LOCAL_DEFAULTS, LOCAL_LIMITS, parseCli } from '../../scripts/load/cli.ts';
import { toTarget } from '../../scripts/load/vegeta.ts';
import { luaScript } from '../../scripts/load/wrk.ts';

describe('command line', () => {
  it('takes flags over environment variables over local defaults', () => {
    const cli = parseCli(['slo', '--rate', '250', '--duration', '10s', '--start'], {
      READ_RATIO: '0.5',
      TARGET_RPS: '900',
    });
    expect(cli.run).toBe('slo');
    expect(cli.start).toBe(true);
    expect(cli.settings).toMatchObject({
      targetRps: 250,
      durationS: 10,
      readRatio: 0.5,
      baseUrl: 'http://127.0.0.1:8080',
    });
    expect(parseCli(['soak'], {}).settings.durationS).toBe(LOCAL_DEFAULTS.soak.durationS);
  });

  it.each([['http://10.0.0.5:8080'], ['https://data.example.com'], ['http://127.0.0.2:8080']])(
    'refuses a non-loopback target %s',
    (url) => {
      expect(() => parseCli(['smoke', '--url', url], {})).toThrow('only targets 127.0.0.1, ::1 or localhost');
    },
  );

  it('accepts every loopback spelling', () => {
    for (const url of ['http://127.0.0.1:9', 'http://localhost:9', 'http://[::1]:9']) {
      expect(parseCli(['smoke', '--url', url], {}).settings.baseUrl).toBe(url);
    }
    expect(
      parseCli(['smoke'], { INGEST_URL: 'http://127.0.0.1:1', QUERY_URL: 'http://localhost:2' }).settings,
    ).toMatchObject({
      ingestUrl: 'http://127.0.0.1:1',
      queryUrl: 'http://localhost:2',
    });
  });

  it('refuses unbounded runs and unknown names', () => {
    expect(() => parseCli(['slo', '--rate', String(LOCAL_LIMITS.maxRps + 1)], {})).toThrow('at most');
    expect(() => parseCli(['soak', '--duration', '5h'], {})).toThrow('at most');
    expect(() => parseCli(['spike', '--duration', '4h', '--ramp', '1m'], {})).toThrow('at most');
    expect(() => parseCli(['bench'], {})).toThrow('name one run');
    expect(() => parseCli(['slo', '--rate', 'fast'], {})).toThrow('TARGET_RPS=fast');
  });
});

describe('vegeta targets and wrk script', () => {
  const settings = parseCli(
    ['mixed', '--ingest-url', 'http://127.0.0.1:1', '--query-url', 'http://127.0.0.1:2', '--seed', '3'],
    {},
  ).settings;
  const record = recordOptionsOf(settings, Date.now());
  const known = prefillRecords(settings.seed, 10, record);
  const specs = take(
    createMixedStream(
      createRng(3),
      { ...DEFAULT_MIX, readRatio: 0.5, batchSize: 2, known, record },
      createRequestIds('r', 'v'),
    ),
    200,
  );

  it('send the very request of the spec: method, function URL, headers, body in base64', () => {
    for (const spec of specs) {
      const target = toTarget(spec, settings);
      expect(target.method).toBe(spec.method);
      expect(target.url).toBe(`${spec.method === 'POST' ? 'http://127.0.0.1:1' : 'http://127.0.0.1:2'}${spec.path}`);
      expect(Object.fromEntries(Object.entries(target.header).map(([k, v]) => [k, v[0]]))).toEqual(spec.headers);
      expect(target.body === undefined ? undefined : Buffer.from(target.body, 'base64').toString('utf8')).toBe(
        spec.body,
      );
    }
  });

  it('compile the same requests into a wrk Lua script', () => {
    const script = luaScript(specs);
    expect(script).toContain('function request()');
    expect(script).toContain('function done(summary, latency, requests)');
    for (const spec of specs.slice(0, 20)) {
      expect(script).toContain(JSON.stringify(spec.path));
      if (spec.body !== undefined) expect(script).toContain(JSON.stringify(spec.body));
    }
  });
});
