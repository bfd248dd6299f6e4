/**
 * The bench's pictures (scripts/bench/charts.ts): a report rendered from a run's figures is written as HTML and
 * PNG, and Chromium draws a bar for every target and a line for every case's latency distribution.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { writeReport } from '../../scripts/bench/charts.ts';
import { compare, type Entry, reportHtml, verdicts } from '../../scripts/bench/report.ts';
import { describeWithBrowser, launchBrowser } from '../support/browser.ts';

const describeBrowser = describeWithBrowser();

const dist = (p50: number): Array<[number, number]> => [
  [0, p50 / 4],
  [50, p50],
  [90, p50 * 2],
  [99, p50 * 5],
  [99.9, p50 * 9],
  [100, p50 * 12],
];
const entry = (name: string, kind: Entry['kind'], rps: number, p50: number, baseline: string | null): Entry => ({
  name,
  kind,
  connections: 32,
  rps,
  p50_ms: p50,
  p99_ms: p50 * 5,
  latency_ms: dist(p50),
  baseline,
  ratio: null,
  cpu_us_per_request: { server: 100, postgres: 50, redis: 5, kafka: 20, machine_share: 175, load_generator: 10 },
});
const entries: Entry[] = [
  entry('node-hello', 'ceiling', 60_000, 0.4, null),
  entry('naive-post', 'naive', 4_000, 7, null),
  entry('post-one', 'service', 9_000, 3, 'naive-post'),
  entry('get-hot', 'service', 20_000, 1, 'node-hello'),
];
compare(entries);
const targets = verdicts(entries);

describe('verdicts', () => {
  it('scores each target as a share of its goal: post-one 9,000 ÷ 4,000 against 2× is 1.125', () => {
    const postOne = targets.find((t) => t.target.startsWith('post-one ≥ 2×'));
    expect(postOne).toMatchObject({ pass: true, score: 1.125 });
    const getHot = targets.find((t) => t.target.startsWith('get-hot'));
    expect(getHot).toMatchObject({ pass: false, score: 0.667 });
    expect(targets.filter((t) => t.score === null).every((t) => t.pass === null)).toBe(true);
  });
});

describeBrowser('the report in Chromium', () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bench-report-'));
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes HTML and a PNG, and draws a bar per target and a line per case', async () => {
    const lines: string[] = [];
    const written = await writeReport(join(dir, 'report'), reportHtml(entries, targets, 'a test run'), (l) =>
      lines.push(l),
    );
    expect(written).toEqual([join(dir, 'report.html'), join(dir, 'report.png')]);
    const png = readFileSync(join(dir, 'report.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');

    const page = await browser.newPage();
    try {
      await page.goto(`file://${join(dir, 'report.html')}`);
      const svgs = page.locator('svg');
      expect(await svgs.count()).toBe(4);
      const targetBars = svgs.nth(0).locator('rect.bar');
      expect(await targetBars.count()).toBe(targets.length);
      // A measured target has a visible bar; post-one's (1.125 of its goal) is longer than get-hot's (0.667).
      const widths = await targetBars.evaluateAll((rects) => rects.map((r) => r.getBoundingClientRect().width));
      const index = (prefix: string) => targets.findIndex((t) => t.target.startsWith(prefix));
      expect(widths[index('post-one ≥ 2×')]).toBeGreaterThan(widths[index('get-hot')] ?? Number.POSITIVE_INFINITY);
      expect(await svgs.nth(2).locator('polyline.series').count()).toBe(2); // the service's two cases
      expect(await svgs.nth(3).locator('polyline.series').count()).toBe(2); // node-hello, naive-post
      const box = await svgs.nth(2).locator('polyline.series').first().boundingBox();
      expect(box?.width ?? 0).toBeGreaterThan(100);
    } finally {
      await page.close();
    }
  }, 60_000);
});
