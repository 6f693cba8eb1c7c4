import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { constants as zc, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';

/**
 * The server side of SPDY/3 framing (draft 3, as Kubernetes' spdystream speaks it
 * under the upgrade token "SPDY/3.1"), the subset a kubelet needs: the peer opens
 * streams (SYN_STREAM), we answer each (SYN_REPLY), data flows both ways (DATA, FIN),
 * either side may reset (RST_STREAM); PING is echoed, GOAWAY ends the connection,
 * SETTINGS and WINDOW_UPDATE are read and ignored — spdystream implements no flow
 * control, so neither does this.
 *
 * Invariants: frames are handled strictly in arrival order (header blocks share one
 * zlib context per direction, so order matters); a frame larger than MAX_FRAME or a
 * malformed one ends the connection (GOAWAY protocol error) instead of buffering
 * without bound; every stream is destroyed when the connection closes.
 */
export const SPDY_VERSION = 3;
export const MAX_FRAME = 1 << 24; // the 24-bit length field's bound
const DATA_CHUNK = 32 * 1024;

export const FrameType = { SYN_STREAM: 1, SYN_REPLY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, HEADERS: 8, WINDOW_UPDATE: 9 } as const;
export const FLAG_FIN = 0x01;
export const RST_PROTOCOL_ERROR = 1;
export const RST_CANCEL = 5;

/** SPDY/3's header-compression dictionary (spec §2.6.10.1): these words, each with a 4-byte length, then the tail. */
const DICT_WORDS = [
  'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding', 'accept-language',
  'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection', 'content-base', 'content-encoding',
  'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type', 'date', 'etag',
  'expect', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer',
  'retry-after', 'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
  'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie', 'keep-alive', 'origin',
];
const DICT_TAIL =
  '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
  '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
  '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,' +
  'publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

export const HEADER_DICTIONARY: Buffer = Buffer.concat([
  ...DICT_WORDS.map((w) => {
    const b = Buffer.alloc(4 + w.length);
    b.writeUInt32BE(w.length, 0);
    b.write(w, 4, 'latin1');
    return b;
  }),
  Buffer.from(DICT_TAIL, 'latin1'),
]);

export type Headers = Map<string, string[]>;

/** A header block before compression: count, then (name, value) with 4-byte lengths; values joined by NUL. */
export function encodeHeaders(h: Headers): Buffer {
  const parts: Buffer[] = [u32(h.size)];
  for (const [name, values] of h) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(values.join('\0'), 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

export function decodeHeaders(b: Buffer): Headers {
  const out: Headers = new Map();
  let off = 0;
  const need = (n: number): void => {
    if (off + n > b.length) throw new Error('truncated header block');
  };
  need(4);
  const count = b.readUInt32BE(off);
  off += 4;
  for (let i = 0; i < count; i++) {
    need(4);
    const nl = b.readUInt32BE(off);
    off += 4;
    need(nl);
    const name = b.toString('utf8', off, off + nl).toLowerCase();
    off += nl;
    need(4);
    const vl = b.readUInt32BE(off);
    off += 4;
    need(vl);
    const values = b.toString('utf8', off, off + vl).split('\0');
    off += vl;
    out.set(name, [...(out.get(name) ?? []), ...values]);
  }
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

export function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  h.writeUInt16BE(type, 2);
  h.writeUInt32BE(((flags & 0xff) << 24) | payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h.writeUInt32BE(((flags & 0xff) << 24) | data.length, 4);
  return Buffer.concat([h, data]);
}

export type RawFrame =
  | { readonly control: true; readonly type: number; readonly flags: number; readonly payload: Buffer }
  | { readonly control: false; readonly streamId: number; readonly flags: number; readonly data: Buffer };

/** Splits whole frames off `buf`; returns them and the unconsumed rest. Throws on a frame over MAX_FRAME. */
export function splitFrames(buf: Buffer): { frames: RawFrame[]; rest: Buffer } {
  const frames: RawFrame[] = [];
  let off = 0;
  while (buf.length - off >= 8) {
    const w0 = buf.readUInt32BE(off);
    const w1 = buf.readUInt32BE(off + 4);
    const len = w1 & 0xffffff;
    const flags = w1 >>> 24;
    if (buf.length - off < 8 + len) break;
    const body = buf.subarray(off + 8, off + 8 + len);
    if ((w0 & 0x80000000) !== 0) {
      const version = (w0 >>> 16) & 0x7fff;
      if (version !== SPDY_VERSION) throw new Error(`SPDY version ${version} (only 3 is spoken)`);
      frames.push({ control: true, type: w0 & 0xffff, flags, payload: Buffer.from(body) });
    } else {
      frames.push({ control: false, streamId: w0 & 0x7fffffff, flags, data: Buffer.from(body) });
    }
    off += 8 + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/** One zlib context for a direction: every header block is one write plus a sync flush. */
class HeaderCodec {
  readonly #z: Deflate | Inflate;
  #out: Buffer[] = [];
  constructor(kind: 'deflate' | 'inflate') {
    this.#z = kind === 'deflate' ? createDeflate({ dictionary: HEADER_DICTIONARY }) : createInflate({ dictionary: HEADER_DICTIONARY });
    this.#z.on('data', (d: Buffer) => this.#out.push(d));
    this.#z.on('error', () => {});
  }
  #tail: Promise<unknown> = Promise.resolve();
  /** Compresses or inflates one header block; calls are served one at a time, in call order. */
  run(input: Buffer): Promise<Buffer> {
    const next = this.#tail.then(() => this.#one(input));
    this.#tail = next.catch(() => {});
    return next;
  }
  #one(input: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.#z.once('error', onError);
      this.#z.write(input);
      this.#z.flush(zc.Z_SYNC_FLUSH, () => {
        this.#z.off('error', onError);
        const out = Buffer.concat(this.#out);
        this.#out = [];
        resolve(out);
      });
    });
  }
  close(): void {
    this.#z.destroy();
  }
}

/** A stream the peer opened. Readable: its DATA; writable: our DATA (end() sends FIN). */
export class SpdyStream extends Duplex {
  readonly id: number;
  readonly headers: Headers;
  readonly #conn: SpdyConnection;
  #finSent = false;
  /** Resolves once our SYN_REPLY is on the wire: the peer drops DATA on a stream it has no reply for. */
  readonly #replied: Promise<void>;
  #markReplied: () => void = () => {};
  constructor(conn: SpdyConnection, id: number, headers: Headers) {
    super({ allowHalfOpen: true });
    this.#conn = conn;
    this.id = id;
    this.headers = headers;
    this.#replied = new Promise((resolve) => {
      this.#markReplied = resolve;
    });
  }
  /** Called by the connection once the SYN_REPLY is sent; writes wait for it. */
  replied(): void {
    this.#markReplied();
  }
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0];
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    void this.#replied.then(() => {
      for (let off = 0; off < chunk.length; off += DATA_CHUNK) this.#conn.send(dataFrame(this.id, 0, chunk.subarray(off, off + DATA_CHUNK)));
      if (this.#conn.writableNeedDrain) this.#conn.onceDrain(() => cb());
      else cb();
    });
  }
  override _final(cb: (e?: Error | null) => void): void {
    void this.#replied.then(() => {
      this.#sendFin();
      cb();
    });
  }
  #sendFin(): void {
    if (this.#finSent) return;
    this.#finSent = true;
    this.#conn.send(dataFrame(this.id, FLAG_FIN, Buffer.alloc(0)));
  }
  /** RST_STREAM with `status`; the stream ends on both sides. */
  reset(status = RST_CANCEL): void {
    this.#finSent = true;
    this.#conn.send(controlFrame(FrameType.RST_STREAM, 0, Buffer.concat([u32(this.id), u32(status)])));
    this.destroy();
  }
  /** Called by the connection for a DATA frame. */
  receive(data: Buffer, fin: boolean): void {
    if (data.length > 0) this.push(data);
    if (fin) this.push(null);
  }
}

/**
 * A SPDY/3 server connection over an upgraded socket. Emits 'stream' for every
 * SYN_STREAM (the caller answers with reply()) and 'close' once.
 */
export class SpdyConnection extends EventEmitter<{ stream: [SpdyStream]; close: [] }> {
  readonly #sock: Duplex;
  readonly #deflate = new HeaderCodec('deflate');
  readonly #inflate = new HeaderCodec('inflate');
  readonly #streams = new Map<number, SpdyStream>();
  #buf: Buffer = Buffer.alloc(0);
  #chain: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(sock: Duplex, head?: Buffer) {
    super();
    this.#sock = sock;
    sock.on('data', (d: Buffer) => this.#onData(d));
    sock.on('error', () => this.close());
    sock.on('close', () => this.close());
    sock.on('end', () => this.close());
    if (head !== undefined && head.length > 0) this.#onData(head);
  }

  get writableNeedDrain(): boolean {
    return this.#sock.writableNeedDrain;
  }
  onceDrain(cb: () => void): void {
    this.#sock.once('drain', cb);
  }
  get streamCount(): number {
    return this.#streams.size;
  }

  send(frame: Buffer): void {
    if (!this.#closed && this.#sock.writable) this.#sock.write(frame);
  }

  /** SYN_REPLY for a stream the peer opened. */
  async reply(stream: SpdyStream, headers: Headers = new Map()): Promise<void> {
    const block = await this.#deflate.run(encodeHeaders(headers));
    this.send(controlFrame(FrameType.SYN_REPLY, 0, Buffer.concat([u32(stream.id), block])));
    stream.replied();
  }

  /** GOAWAY, then the socket ends once written; every stream is destroyed. */
  close(status = 0): void {
    if (this.#closed) return;
    if (this.#sock.writable) this.#sock.end(controlFrame(FrameType.GOAWAY, 0, Buffer.concat([u32(0), u32(status)])));
    this.#closed = true;
    for (const s of this.#streams.values()) {
      s.replied(); // pending writes end against a closed connection instead of waiting forever
      s.destroy();
    }
    this.#streams.clear();
    this.#deflate.close();
    this.#inflate.close();
    this.emit('close');
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(d: Buffer): void {
    if (this.#closed) return;
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    let frames: RawFrame[];
    try {
      ({ frames, rest: this.#buf } = splitFrames(this.#buf));
    } catch {
      this.close(1);
      return;
    }
    if (this.#buf.length > MAX_FRAME + 8) {
      this.close(1);
      return;
    }
    for (const f of frames) this.#chain = this.#chain.then(() => this.#handle(f)).catch(() => this.close(1));
  }

  async #handle(f: RawFrame): Promise<void> {
    if (this.#closed) return;
    if (!f.control) {
      const s = this.#streams.get(f.streamId);
      if (s === undefined) return;
      s.receive(f.data, (f.flags & FLAG_FIN) !== 0);
      if ((f.flags & FLAG_FIN) !== 0) this.#forgetWhenDone(s);
      return;
    }
    const p = f.payload;
    switch (f.type) {
      case FrameType.SYN_STREAM: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaders(await this.#inflate.run(p.subarray(10)));
        const s = new SpdyStream(this, id, headers);
        this.#streams.set(id, s);
        s.on('close', () => this.#streams.delete(id));
        if ((f.flags & FLAG_FIN) !== 0) s.receive(Buffer.alloc(0), true);
        this.emit('stream', s);
        return;
      }
      case FrameType.HEADERS:
        await this.#inflate.run(p.subarray(4)); // keeps the zlib context in step; no use for the headers
        return;
      case FrameType.RST_STREAM: {
        const s = this.#streams.get(p.readUInt32BE(0) & 0x7fffffff);
        s?.destroy();
        return;
      }
      case FrameType.PING:
        this.send(controlFrame(FrameType.PING, 0, p.subarray(0, 4)));
        return;
      case FrameType.GOAWAY:
        this.close();
        return;
      default:
        return; // SETTINGS, WINDOW_UPDATE, SYN_REPLY to nothing we opened: ignored
    }
  }

  #forgetWhenDone(s: SpdyStream): void {
    if (s.writableFinished) this.#streams.delete(s.id);
    else s.once('finish', () => this.#streams.delete(s.id));
  }
}
