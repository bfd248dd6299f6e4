/**
 * `npm run token -- --write <sources> --read <sources> [--ttl 1h] [--sub name]`: a bearer token of the local
 * issuer (the one `npm start` trusts), the token alone on the last line of stdout. Sources are comma-separated
 * names or prefixes (`sensor-*`); `'*'` grants every source. The key is created if `npm start` has not yet.
 *
 *   TOKEN=$(npm run -s token -- --write '*' --read '*' | tail -1)
 */
import { parseArgs } from 'node:util';
import { LOCAL_KEY_FILE, localIssuer } from './local-issuer.ts';

const USAGE = `usage: npm run token -- [--write <sources>] [--read <sources>] [--ttl 1h] [--sub name]
  --write, --read  comma-separated source names or prefixes (sensor-*); '*' for every source
  --ttl            lifetime: 30s, 15m, 1h, 7d (default 1h)
  --sub            the caller's name (default local-user): idempotency keys, cursors and rate limits are per caller`;

const { values } = parseArgs({
  options: {
    write: { type: 'string', default: '' },
    read: { type: 'string', default: '' },
    ttl: { type: 'string', default: '1h' },
    sub: { type: 'string', default: 'local-user' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const ttl = /^(\d+)(s|m|h|d)$/.exec(values.ttl);
if (!ttl?.[1] || !ttl[2]) {
  process.stderr.write(`--ttl ${values.ttl}: use a number and s, m, h or d (e.g. 1h)\n${USAGE}\n`);
  process.exit(2);
}
const unit = { s: 1, m: 60, h: 3_600, d: 86_400 }[ttl[2] as 's' | 'm' | 'h' | 'd'];
const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
const write = list(values.write);
const read = list(values.read);
if (write.length === 0 && read.length === 0) {
  process.stderr.write(`grant something: --write and/or --read\n${USAGE}\n`);
  process.exit(2);
}
const issuer = await localIssuer();
const token = await issuer.sign({ subject: values.sub, write, read, ttlSeconds: Number(ttl[1]) * unit });
process.stderr.write(
  `token for ${values.sub}: write ${write.join(',') || '-'}, read ${read.join(',') || '-'}, valid ${values.ttl} (key ${LOCAL_KEY_FILE})\n`,
);
process.stdout.write(`${token}\n`);
