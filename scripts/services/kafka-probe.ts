/**
 * A Kafka readiness probe over raw TCP, so waiting for the broker costs no JVM start: ApiVersions (v0, which every
 * broker answers) to learn the Metadata versions it serves, then a Metadata request for no topics, whose answer
 * lists the brokers that are registered and unfenced — i.e. really serving.
 */
import { connect, type Socket } from 'node:net';

export interface ClusterInfo {
  clusterId: string | null;
  brokers: { nodeId: number; host: string; port: number }[];
}

const API_METADATA = 3;
const API_VERSIONS = 18;
const CLIENT_ID = 'services-probe';

function request(apiKey: number, apiVersion: number, correlationId: number, body: Buffer): Buffer {
  const client = Buffer.from(CLIENT_ID);
  const header = Buffer.alloc(10);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(apiVersion, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(client.length, 8);
  const size = Buffer.alloc(4);
  size.writeInt32BE(header.length + client.length + body.length);
  return Buffer.concat([size, header, client, body]);
}

/** Reads size-prefixed responses from a socket, one at a time. */
class Frames {
  private buffer = Buffer.alloc(0);
  private waiting: { resolve: (frame: Buffer) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.deliver();
    });
    const fail = (error: Error) => {
      this.failure = error;
      this.waiting?.reject(error);
      this.waiting = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  next(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.waiting = { resolve, reject };
      this.deliver();
    });
  }

  private deliver(): void {
    if (!this.waiting || this.buffer.length < 4) return;
    const size = this.buffer.readInt32BE(0);
    if (this.buffer.length < 4 + size) return;
    const frame = this.buffer.subarray(4, 4 + size);
    this.buffer = this.buffer.subarray(4 + size);
    const { resolve } = this.waiting;
    this.waiting = undefined;
    resolve(frame);
  }
}

class Reader {
  offset = 0;
  private readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  int16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  string(): string | null {
    const length = this.int16();
    if (length < 0) return null;
    const v = this.buf.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return v;
  }
}

/** Asks the broker at host:port for its cluster metadata; rejects on any failure or after `timeoutMs`. */
export async function kafkaMetadata(host: string, port: number, timeoutMs = 5000): Promise<ClusterInfo> {
  const socket = connect({ host, port });
  const frames = new Frames(socket);
  const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });

    socket.write(request(API_VERSIONS, 0, 1, Buffer.alloc(0)));
    const versions = new Reader(await frames.next());
    if (versions.int32() !== 1) throw new Error('ApiVersions: wrong correlation id');
    const error = versions.int16();
    if (error !== 0) throw new Error(`ApiVersions: error code ${error}`);
    let range: [number, number] | undefined;
    for (let n = versions.int32(); n > 0; n--) {
      const [key, min, max] = [versions.int16(), versions.int16(), versions.int16()];
      if (key === API_METADATA) range = [min, max];
    }
    // v4–v7 share one request layout and a response whose start (up to controller_id) is what we read.
    const version = range && Math.max(range[0], 4);
    if (!range || version === undefined || version > Math.min(range[1], 7)) {
      throw new Error(`Metadata versions ${range?.join('–') ?? 'none'} offered; this probe speaks 4–7`);
    }
    const body = Buffer.alloc(5);
    body.writeInt32BE(0, 0); // topics: none (empty array, not null = all)
    body.writeInt8(0, 4); // allow_auto_topic_creation: false
    socket.write(request(API_METADATA, version, 2, body));
    const metadata = new Reader(await frames.next());
    if (metadata.int32() !== 2) throw new Error('Metadata: wrong correlation id');
    metadata.int32(); // throttle_time_ms
    const brokers: ClusterInfo['brokers'] = [];
    for (let n = metadata.int32(); n > 0; n--) {
      const nodeId = metadata.int32();
      const brokerHost = metadata.string() ?? '';
      const brokerPort = metadata.int32();
      metadata.string(); // rack
      brokers.push({ nodeId, host: brokerHost, port: brokerPort });
    }
    return { clusterId: metadata.string(), brokers };
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
