import type { Duplex } from 'node:stream';
import { constants as zc, createDeflate, createInflate } from 'node:zlib';
import { FLAG_FIN, FrameType, HEADER_DICTIONARY, controlFrame, dataFrame, decodeHeaders, encodeHeaders, splitFrames } from './spdy.ts';

/**
 * A minimal SPDY/3 client for tests of the server side: opens streams (odd ids),
 * waits for each SYN_REPLY, sends and collects DATA. Not used by the kubelet itself.
 */
export class SpdyClient {
  readonly #sock: Duplex;
  readonly #deflate = createDeflate({ dictionary: HEADER_DICTIONARY });
  readonly #inflate = createInflate({ dictionary: HEADER_DICTIONARY });
  #next = 1;
  #buf: Buffer = Buffer.alloc(0);
  readonly #data = new Map<number, Buffer[]>();
  readonly #fin = new Set<number>();
  readonly #waiters: (() => void)[] = [];
  readonly #replied = new Set<number>();
  readonly #pings = new Set<number>();
  readonly #reset = new Set<number>();

  constructor(sock: Duplex) {
    this.#sock = sock;
    sock.on('data', (d: Buffer) => void this.#onData(d));
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  #until(ok: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (ok()) resolve();
        else this.#waiters.push(check);
      };
      check();
    });
  }

  #compress(h: Record<string, string>): Promise<Buffer> {
    return new Promise((resolve) => {
      const out: Buffer[] = [];
      const on = (d: Buffer): number => out.push(d);
      this.#deflate.on('data', on);
      this.#deflate.write(encodeHeaders(new Map(Object.entries(h).map(([k, v]) => [k, [v]]))));
      this.#deflate.flush(zc.Z_SYNC_FLUSH, () => {
        this.#deflate.off('data', on);
        resolve(Buffer.concat(out));
      });
    });
  }

  #chain: Promise<void> = Promise.resolve();
  #onData(d: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, d]);
    const { frames, rest } = splitFrames(this.#buf);
    this.#buf = rest;
    for (const f of frames) {
      this.#chain = this.#chain.then(async () => {
        if (!f.control) {
          const list = this.#data.get(f.streamId) ?? [];
          list.push(f.data);
          this.#data.set(f.streamId, list);
          if ((f.flags & FLAG_FIN) !== 0) this.#fin.add(f.streamId);
        } else if (f.type === FrameType.SYN_REPLY) {
          await new Promise<void>((r) => {
            this.#inflate.write(f.payload.subarray(4));
            this.#inflate.flush(zc.Z_SYNC_FLUSH, () => r());
          });
          this.#replied.add(f.payload.readUInt32BE(0));
        } else if (f.type === FrameType.PING) {
          this.#pings.add(f.payload.readUInt32BE(0));
        } else if (f.type === FrameType.RST_STREAM) {
          this.#reset.add(f.payload.readUInt32BE(0));
        }
        this.#wake();
      });
    }
  }

  async open(headers: Record<string, string>): Promise<number> {
    const id = this.#next;
    this.#next += 2;
    const block = await this.#compress(headers);
    const head = Buffer.alloc(10);
    head.writeUInt32BE(id, 0);
    this.#sock.write(controlFrame(FrameType.SYN_STREAM, 0, Buffer.concat([head, block])));
    await this.#until(() => this.#replied.has(id) || this.#reset.has(id));
    return id;
  }

  async send(id: number, data: Buffer, fin: boolean): Promise<void> {
    this.#sock.write(dataFrame(id, fin ? FLAG_FIN : 0, data));
  }

  async readAll(id: number): Promise<Buffer> {
    await this.#until(() => this.#fin.has(id) || this.#reset.has(id));
    return Buffer.concat(this.#data.get(id) ?? []);
  }

  received(id: number): Buffer {
    return Buffer.concat(this.#data.get(id) ?? []);
  }

  async ping(n: number): Promise<number> {
    this.#sock.write(controlFrame(FrameType.PING, 0, Buffer.from([0, 0, 0, n])));
    await this.#until(() => this.#pings.has(n));
    return n;
  }

  /** Header block decode helper exposed for assertions on replies. */
  static headers = decodeHeaders;
}
