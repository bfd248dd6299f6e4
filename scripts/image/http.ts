/**
 * HTTP on loopback as the checks need it: single requests on fresh connections (what kubelet's probes do), and a
 * raw HTTP/1.1 connection that is written to and read from by hand, so that a request can be left half-sent
 * (in flight at SIGTERM) or a connection left idle for minutes and then reused.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** One request on a fresh connection (`Connection: close`): nothing stays open that could delay a drain. */
export function fetchOnce(
  port: number,
  path: string,
  options: { method?: string; body?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        agent: false,
        timeout: options.timeoutMs ?? 5_000,
        headers: options.body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) headers[name] = String(value);
          resolve({ status: res.statusCode ?? 0, headers, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from 127.0.0.1:${port}${path} in time`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** What a new TCP connection to a loopback port meets: 'connected', or the error code ('ECONNREFUSED'). */
export function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

/** A request as raw HTTP/1.1 text; with a body, JSON unless told otherwise. */
export function requestText(method: string, path: string, body?: string, contentType = 'application/json'): string {
  if (body === undefined) return `${method} ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
  return `${method} ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** The headers and half the body, and the rest: sent apart, the request is in flight in between. */
export function splitRequest(text: string): { head: string; rest: string } {
  const bodyAt = text.indexOf('\r\n\r\n') + 4;
  const cut = bodyAt + Math.floor((text.length - bodyAt) / 2);
  return { head: text.slice(0, cut), rest: text.slice(cut) };
}

/** One raw connection and the responses read off it in order (Content-Length framing is all these checks need). */
export class RawConnection {
  /** `performance.now()` when the peer closed the connection, if it did. */
  closedAt: number | undefined;
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private readonly socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** The next complete response; rejects when the connection closes first or after `timeoutMs`. */
  response(timeoutMs = 10_000): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no complete response within ${timeoutMs} ms: ${this.buffer.toString('utf8').slice(0, 500)}`));
      }, timeoutMs);
      const check = () => {
        const parsed = this.parse();
        if (parsed) {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(parsed);
        } else if (this.closedAt !== undefined) {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(new Error(`connection closed before a complete response: ${this.buffer.toString('utf8')}`));
        }
      };
      this.waiter = check;
      check();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(): Reply | undefined {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end === -1) return undefined;
    const [statusLine = '', ...lines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.buffer.length < end + 4 + length) return undefined;
    const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buffer = this.buffer.subarray(end + 4 + length);
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }
}
