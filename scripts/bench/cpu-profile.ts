/**
 * A V8 CPU profile (`node --cpu-prof`) resolved through a bundle's source map: self time by module — our files by
 * repository path, dependencies by npm package, Node's own and native code counted for the nearest caller that is
 * one of those — and by function, over a window of the samples. Used by `bench:profile` and `bench:relay`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { originalPositionFor, TraceMap } from '@jridgewell/trace-mapping';

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame; readonly children?: number[] }>;
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code comes from: a repository path, `npm:<package>`, `node:<module>`, or a V8 bucket. */
export function locator(distDir: string) {
  const maps = new Map<string, TraceMap | null>();
  const repo = dirname(distDir);
  /** The module of a source file, and the file as it is shown (inside its package for dependencies). */
  const origin = (path: string): { module: string; shown: string } => {
    const at = path.lastIndexOf('/node_modules/');
    if (at < 0) return { module: relative(repo, path), shown: relative(repo, path) };
    const shown = path.slice(at + '/node_modules/'.length);
    const [scope = '', name = ''] = shown.split('/');
    return { module: `npm:${scope.startsWith('@') ? `${scope}/${name}` : scope}`, shown };
  };
  return (frame: CallFrame): { module: string; where: string } => {
    if (frame.url === '') return { module: frame.functionName, where: '' };
    if (frame.url.startsWith('node:')) {
      return { module: frame.url.split('/').slice(0, 2).join('/'), where: `${frame.url}:${frame.lineNumber + 1}` };
    }
    const file = frame.url.startsWith('file://') ? fileURLToPath(frame.url) : frame.url;
    if (!maps.has(file)) {
      maps.set(file, existsSync(`${file}.map`) ? new TraceMap(readFileSync(`${file}.map`, 'utf8')) : null);
    }
    const map = maps.get(file);
    if (!map) return { module: origin(file).module, where: `${origin(file).shown}:${frame.lineNumber + 1}` };
    const mapped = originalPositionFor(map, { line: frame.lineNumber + 1, column: frame.columnNumber });
    if (!mapped.source) return { module: `${relative(repo, file)} (unmapped)`, where: relative(repo, file) };
    const { module, shown } = origin(resolve(dirname(file), mapped.source));
    return { module, where: `${shown}:${mapped.line}` };
  };
}

/** Self time (µs) by module and by function over the samples inside [fromUs, toUs]. */
export function analyse(profile: CpuProfile, fromUs: number, toUs: number, distDir: string) {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const parents = new Map(profile.nodes.flatMap((n) => (n.children ?? []).map((child) => [child, n.id] as const)));
  const locate = locator(distDir);
  const BUCKET = /^\((garbage collector|program|idle|root)\)$/;
  /**
   * Node's own code and native code (writev, TextDecoder, microtasks, RegExp…) count for the nearest caller that
   * is ours or a dependency's: a response's write is the cost of the edge that writes it, a query's of the driver.
   */
  const attribute = (id: number) => {
    const frame = frames.get(id) as CallFrame;
    const name = frame.functionName || '(anonymous)';
    const own = locate(frame);
    if (BUCKET.test(frame.functionName) || (frame.url !== '' && !frame.url.startsWith('node:')))
      return { ...own, name };
    const ownWhere = frame.url === '' ? 'native' : own.where;
    for (let caller = parents.get(id); caller !== undefined; caller = parents.get(caller)) {
      const url = frames.get(caller)?.url ?? '';
      if (url === '' || url.startsWith('node:')) continue;
      const from = locate(frames.get(caller) as CallFrame);
      return { module: from.module, where: `${ownWhere} via ${from.where}`, name };
    }
    return { module: frame.url === '' ? '(native code)' : own.module, where: ownWhere, name };
  };
  const located = new Map<number, { module: string; where: string; name: string }>();
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, { module: string; us: number }>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const weight = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const id = profile.samples[i] as number;
    let where = located.get(id);
    if (where === undefined) {
      where = attribute(id);
      located.set(id, where);
    }
    byModule.set(where.module, (byModule.get(where.module) ?? 0) + weight);
    const key = `${where.name}  ${where.where}`;
    const fn = byFunction.get(key) ?? { module: where.module, us: 0 };
    fn.us += weight;
    byFunction.set(key, fn);
  }
  return { byModule, byFunction };
}
