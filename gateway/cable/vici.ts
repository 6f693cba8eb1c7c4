import { createConnection, type Socket } from 'node:net';
import { ErrorCodes, IsthmusError, messageOf, silentLogger, type Logger } from '../../core/index.ts';

/**
 * A client for strongSwan's VICI protocol (the `vici` plugin of charon), written from
 * the protocol's description in strongSwan's src/libcharon/plugins/vici/README.md.
 *
 * Transport: every packet is a 32-bit big-endian length followed by that many bytes
 * (at most 512 KiB). Packet: 1 byte type, then for named types a 1-byte name length and
 * the ASCII name, then (for CMD_REQUEST, CMD_RESPONSE and EVENT) a message.
 * Message: a sequence of elements, each a 1-byte type; SECTION_START, KEY_VALUE and
 * LIST_START carry a 1-byte-length name; KEY_VALUE and LIST_ITEM a 2-byte big-endian
 * length value.
 *
 * In JS a message is a plain object: a value is a string (or a Buffer for binary data),
 * a list is an array of values, a section is a nested object. Decoding gives strings
 * for values that are valid UTF-8 and Buffers otherwise. (JS objects order integer-like
 * keys first; no VICI command we send depends on the order of such keys.)
 */

export type ViciValue = string | Buffer;
export interface ViciMessage {
  [key: string]: ViciValue | readonly ViciValue[] | ViciMessage;
}

export const PacketType = {
  CMD_REQUEST: 0,
  CMD_RESPONSE: 1,
  CMD_UNKNOWN: 2,
  EVENT_REGISTER: 3,
  EVENT_UNREGISTER: 4,
  EVENT_CONFIRM: 5,
  EVENT_UNKNOWN: 6,
  EVENT: 7,
} as const;
export type PacketTypeCode = (typeof PacketType)[keyof typeof PacketType];

export const ElementType = {
  SECTION_START: 1,
  SECTION_END: 2,
  KEY_VALUE: 3,
  LIST_START: 4,
  LIST_ITEM: 5,
  LIST_END: 6,
} as const;

/** The protocol's limit on one transport segment (the data after the length header). */
export const MAX_SEGMENT = 512 * 1024;
export const MAX_NAME = 255;
export const MAX_VALUE = 65_535;

const NAMED = new Set<number>([PacketType.CMD_REQUEST, PacketType.EVENT_REGISTER, PacketType.EVENT_UNREGISTER, PacketType.EVENT]);
const WITH_MESSAGE = new Set<number>([PacketType.CMD_REQUEST, PacketType.CMD_RESPONSE, PacketType.EVENT]);

function malformed(why: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `malformed VICI data: ${why}`);
}

function badInput(why: string): IsthmusError {
  return new IsthmusError(ErrorCodes.INVALID_ARGUMENT, `cannot encode VICI message: ${why}`);
}

function isValue(v: unknown): v is ViciValue {
  return typeof v === 'string' || Buffer.isBuffer(v);
}

function nameBytes(name: string, path: string): Buffer {
  const b = Buffer.from(name, 'ascii');
  if (b.length === 0) throw badInput(`empty name at ${path || 'root'}`);
  if (b.length > MAX_NAME) throw badInput(`name ${path}${name.slice(0, 20)}… is ${b.length} bytes, more than ${MAX_NAME}`);
  if (!/^[\x20-\x7e]*$/.test(name)) throw badInput(`name ${JSON.stringify(name)} is not printable ASCII`);
  return b;
}

function valueBytes(v: ViciValue, path: string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  if (b.length > MAX_VALUE) throw badInput(`value of ${path} is ${b.length} bytes, more than ${MAX_VALUE}`);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function encodeInto(out: Buffer[], msg: ViciMessage, path: string): void {
  for (const [key, v] of Object.entries(msg)) {
    const where = `${path}${key}`;
    const name = nameBytes(key, path);
    if (isValue(v)) {
      const val = valueBytes(v, where);
      out.push(Buffer.from([ElementType.KEY_VALUE, name.length]), name, u16(val.length), val);
    } else if (Array.isArray(v)) {
      out.push(Buffer.from([ElementType.LIST_START, name.length]), name);
      for (const item of v as readonly unknown[]) {
        if (!isValue(item)) throw badInput(`list ${where} holds a ${typeof item}: lists take strings or Buffers only`);
        const val = valueBytes(item, `${where}[]`);
        out.push(Buffer.from([ElementType.LIST_ITEM]), u16(val.length), val);
      }
      out.push(Buffer.from([ElementType.LIST_END]));
    } else if (typeof v === 'object' && v !== null) {
      out.push(Buffer.from([ElementType.SECTION_START, name.length]), name);
      encodeInto(out, v as ViciMessage, `${where}.`);
      out.push(Buffer.from([ElementType.SECTION_END]));
    } else {
      throw badInput(`${where} is a ${typeof v}: give a string, a Buffer, an array or an object`);
    }
  }
}

/** Encodes a message (the part after the packet header). */
export function encodeMessage(msg: ViciMessage): Buffer {
  const out: Buffer[] = [];
  encodeInto(out, msg, '');
  return Buffer.concat(out);
}

function decodeValue(b: Buffer): ViciValue {
  const s = b.toString('utf8');
  return Buffer.from(s, 'utf8').equals(b) ? s : Buffer.from(b);
}

/** Decodes a message; throws IsthmusError INVALID_ARGUMENT on malformed input. */
export function decodeMessage(buf: Buffer): ViciMessage {
  const root: ViciMessage = {};
  const stack: ViciMessage[] = [root];
  let list: ViciValue[] | undefined;
  let pos = 0;
  const need = (n: number, what: string): void => {
    if (pos + n > buf.length) throw malformed(`${what} runs past the end (offset ${pos}, ${buf.length} bytes)`);
  };
  const readName = (): string => {
    need(1, 'name length');
    const len = buf[pos++] ?? 0;
    need(len, 'name');
    const name = buf.toString('latin1', pos, pos + len);
    pos += len;
    if (len === 0) throw malformed(`empty name at offset ${pos - 1}`);
    return name;
  };
  const readValue = (): ViciValue => {
    need(2, 'value length');
    const len = buf.readUInt16BE(pos);
    pos += 2;
    need(len, 'value');
    const v = decodeValue(buf.subarray(pos, pos + len));
    pos += len;
    return v;
  };
  const current = (): ViciMessage => stack[stack.length - 1] ?? root;
  const put = (name: string, v: ViciMessage[string]): void => {
    const sec = current();
    if (Object.hasOwn(sec, name)) throw malformed(`duplicate key ${JSON.stringify(name)}`);
    sec[name] = v;
  };
  while (pos < buf.length) {
    const type = buf[pos++];
    if (list !== undefined && type !== ElementType.LIST_ITEM && type !== ElementType.LIST_END) {
      throw malformed(`element type ${type} inside a list`);
    }
    switch (type) {
      case ElementType.SECTION_START: {
        const sec: ViciMessage = {};
        put(readName(), sec);
        stack.push(sec);
        break;
      }
      case ElementType.SECTION_END:
        if (stack.length === 1) throw malformed('SECTION_END without a section');
        stack.pop();
        break;
      case ElementType.KEY_VALUE: {
        const name = readName();
        put(name, readValue());
        break;
      }
      case ElementType.LIST_START: {
        const items: ViciValue[] = [];
        put(readName(), items);
        list = items;
        break;
      }
      case ElementType.LIST_ITEM:
        if (list === undefined) throw malformed('LIST_ITEM outside a list');
        list.push(readValue());
        break;
      case ElementType.LIST_END:
        if (list === undefined) throw malformed('LIST_END without a list');
        list = undefined;
        break;
      default:
        throw malformed(`unknown element type ${type} at offset ${pos - 1}`);
    }
  }
  if (list !== undefined) throw malformed('list not closed');
  if (stack.length !== 1) throw malformed(`${stack.length - 1} section(s) not closed`);
  return root;
}

export interface Packet {
  readonly type: PacketTypeCode;
  readonly name?: string;
  readonly message?: ViciMessage;
}

/** A whole transport segment: 4-byte length, packet type, optional name, optional message. */
export function encodePacket(p: Packet): Buffer {
  const parts: Buffer[] = [Buffer.from([p.type])];
  if (NAMED.has(p.type)) {
    if (p.name === undefined) throw badInput(`packet type ${p.type} needs a name`);
    const n = nameBytes(p.name, '');
    parts.push(Buffer.from([n.length]), n);
  }
  if (WITH_MESSAGE.has(p.type)) parts.push(encodeMessage(p.message ?? {}));
  const body = Buffer.concat(parts);
  if (body.length > MAX_SEGMENT) throw badInput(`packet is ${body.length} bytes, more than the ${MAX_SEGMENT} VICI allows`);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** Decodes one packet body (a segment without its length header). */
export function decodePacket(body: Buffer): Packet {
  if (body.length === 0) throw malformed('empty packet');
  const type = body[0] ?? -1;
  if (type > PacketType.EVENT) throw malformed(`unknown packet type ${type}`);
  let pos = 1;
  let name: string | undefined;
  if (NAMED.has(type)) {
    const len = body[1];
    if (len === undefined || 2 + len > body.length) throw malformed('packet name runs past the end');
    name = body.toString('latin1', 2, 2 + len);
    pos = 2 + len;
  }
  const rest = body.subarray(pos);
  if (!WITH_MESSAGE.has(type) && rest.length > 0) throw malformed(`packet type ${type} carries ${rest.length} unexpected bytes`);
  const t = type as PacketTypeCode;
  const message = WITH_MESSAGE.has(type) ? decodeMessage(rest) : undefined;
  return { type: t, ...(name === undefined ? {} : { name }), ...(message === undefined ? {} : { message }) };
}

/** Splits a byte stream into segments; `push` returns the complete packet bodies. */
export class SegmentReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_SEGMENT) throw malformed(`segment of ${len} bytes exceeds the ${MAX_SEGMENT} limit`);
      if (this.#buf.length < 4 + len) break;
      out.push(this.#buf.subarray(4, 4 + len));
      this.#buf = this.#buf.subarray(4 + len);
    }
    return out;
  }
}

export type EventHandler = (name: string, message: ViciMessage) => void;

export interface ViciClientOptions {
  /** Fail a request after this many ms without its response (default 30 000). */
  timeoutMs?: number;
  logger?: Logger;
  /**
   * Whether the open socket keeps the Node process alive (default true). A daemon's
   * long-lived client passes false: a request in flight still does (its timer is ref'd).
   */
  keepAlive?: boolean;
}

interface Pending {
  readonly expect: 'command' | 'event';
  readonly what: string;
  resolve(p: Packet): void;
  reject(e: Error): void;
}

/** `true` for a VICI "yes". */
export function yes(v: unknown): boolean {
  return v === 'yes';
}

/**
 * One connection to charon's VICI socket. Requests go out one at a time (the protocol
 * has no request ids); callers may issue them concurrently and they are queued. Event
 * handlers get every EVENT packet of the names they registered, also while a request
 * is in flight.
 */
export class ViciClient {
  readonly path: string;
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #reader = new SegmentReader();
  readonly #handlers = new Map<string, Set<EventHandler>>();
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #streams: Promise<unknown> = Promise.resolve();
  #closedError: IsthmusError | undefined;
  #resolveClosed: (e: IsthmusError) => void = () => {};
  readonly #closedPromise = new Promise<IsthmusError>((r) => {
    this.#resolveClosed = r;
  });

  private constructor(path: string, socket: Socket, options: ViciClientOptions) {
    this.path = path;
    this.#socket = socket;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#logger = options.logger ?? silentLogger();
    if (options.keepAlive === false) socket.unref();
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (e) => this.#fail(new IsthmusError(ErrorCodes.UNAVAILABLE, `VICI socket ${path}: ${e.message}`, { cause: e })));
    socket.on('close', () => this.#fail(new IsthmusError(ErrorCodes.UNAVAILABLE, `VICI socket ${path} closed by charon: is charon still running?`)));
  }

  /** Connects to the Unix socket at `path`; IsthmusError UNAVAILABLE when nothing listens. */
  static connect(path: string, options: ViciClientOptions = {}): Promise<ViciClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ path });
      const onError = (e: NodeJS.ErrnoException): void => {
        socket.destroy();
        reject(new IsthmusError(ErrorCodes.UNAVAILABLE, `cannot connect to the VICI socket ${path} (${e.code ?? e.message}): is charon running with the vici plugin?`, { cause: e, context: { path } }));
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        resolve(new ViciClient(path, socket, options));
      });
    });
  }

  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  close(): void {
    this.#fail(new IsthmusError(ErrorCodes.ABORTED, `VICI connection ${this.path} closed`));
    this.#socket.destroy();
  }

  /** Resolves (never rejects) with the reason once the connection is closed or broken. */
  whenClosed(): Promise<IsthmusError> {
    return this.#closedPromise;
  }

  #fail(err: IsthmusError): void {
    if (this.#closedError === undefined) {
      this.#closedError = err;
      this.#resolveClosed(err);
    }
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(err);
  }

  #onData(chunk: Buffer): void {
    let bodies: Buffer[];
    let packets: Packet[];
    try {
      bodies = this.#reader.push(chunk);
      packets = bodies.map(decodePacket);
    } catch (err) {
      this.#fail(err instanceof IsthmusError ? err : malformed(messageOf(err)));
      this.#socket.destroy();
      return;
    }
    for (const p of packets) this.#dispatch(p);
  }

  #dispatch(p: Packet): void {
    if (p.type === PacketType.EVENT) {
      const name = p.name ?? '';
      for (const h of this.#handlers.get(name) ?? []) {
        try {
          h(name, p.message ?? {});
        } catch (err) {
          this.#logger.warn({ event: name, err: messageOf(err) }, 'VICI event handler threw');
        }
      }
      return;
    }
    const pending = this.#pending;
    const isCommand = p.type === PacketType.CMD_RESPONSE || p.type === PacketType.CMD_UNKNOWN;
    const isEvent = p.type === PacketType.EVENT_CONFIRM || p.type === PacketType.EVENT_UNKNOWN;
    if (pending === undefined || (isCommand && pending.expect !== 'command') || (isEvent && pending.expect !== 'event') || (!isCommand && !isEvent)) {
      this.#fail(malformed(`unexpected packet type ${p.type} from charon`));
      this.#socket.destroy();
      return;
    }
    this.#pending = undefined;
    pending.resolve(p);
  }

  /** Sends one packet and waits for its reply, after every earlier exchange finished. */
  #exchange(packet: Packet, expect: 'command' | 'event', what: string, timeoutMs: number): Promise<Packet> {
    const run = (): Promise<Packet> =>
      new Promise<Packet>((resolve, reject) => {
        if (this.#closedError !== undefined) {
          reject(this.#closedError);
          return;
        }
        let bytes: Buffer;
        try {
          bytes = encodePacket(packet);
        } catch (err) {
          reject(err);
          return;
        }
        const timer = setTimeout(() => {
          if (this.#pending !== pending) return;
          // the reply may still come: the connection is no longer in step, so drop it
          this.#fail(new IsthmusError(ErrorCodes.TIMEOUT, `VICI ${what}: no answer from charon within ${timeoutMs} ms`));
          this.#socket.destroy();
        }, timeoutMs);
        const pending: Pending = {
          expect,
          what,
          resolve: (p) => {
            clearTimeout(timer);
            resolve(p);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        };
        this.#pending = pending;
        this.#socket.write(bytes);
      });
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Adds a handler for an event name and registers the name with charon if it is the first. */
  async on(event: string, handler: EventHandler): Promise<void> {
    let set = this.#handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    const first = set.size === 0;
    set.add(handler);
    if (!first) return;
    try {
      await this.#register(event, PacketType.EVENT_REGISTER);
    } catch (err) {
      set.delete(handler);
      throw err;
    }
  }

  /** Removes a handler; unregisters the name with charon when it was the last. */
  async off(event: string, handler: EventHandler): Promise<void> {
    const set = this.#handlers.get(event);
    if (set === undefined || !set.delete(handler) || set.size > 0) return;
    this.#handlers.delete(event);
    if (!this.closed) await this.#register(event, PacketType.EVENT_UNREGISTER);
  }

  async #register(event: string, type: typeof PacketType.EVENT_REGISTER | typeof PacketType.EVENT_UNREGISTER): Promise<void> {
    const verb = type === PacketType.EVENT_REGISTER ? 'register' : 'unregister';
    const reply = await this.#exchange({ type, name: event }, 'event', `${verb} ${event}`, this.#timeoutMs);
    if (reply.type === PacketType.EVENT_UNKNOWN) {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `charon has no VICI event "${event}" to ${verb}`, { context: { event } });
    }
  }

  /**
   * Runs a command and returns its response. A response with `success = no` rejects
   * with IsthmusError COMMAND_FAILED carrying charon's errmsg; an unknown command with
   * NOT_FOUND; a dead socket with UNAVAILABLE; no answer in time with TIMEOUT.
   */
  async request(command: string, message: ViciMessage = {}, options: { timeoutMs?: number } = {}): Promise<ViciMessage> {
    const reply = await this.#exchange({ type: PacketType.CMD_REQUEST, name: command, message }, 'command', command, options.timeoutMs ?? this.#timeoutMs);
    if (reply.type === PacketType.CMD_UNKNOWN) {
      throw new IsthmusError(ErrorCodes.NOT_FOUND, `charon does not know the VICI command "${command}": is its strongSwan too old?`, { context: { command } });
    }
    const res = reply.message ?? {};
    if (res['success'] === 'no') {
      const errmsg = typeof res['errmsg'] === 'string' ? res['errmsg'] : 'no reason given';
      throw new IsthmusError(ErrorCodes.COMMAND_FAILED, `VICI ${command} failed: ${errmsg}`, { context: { command, errmsg } });
    }
    return res;
  }

  /**
   * Runs a streaming command (list-sas → list-sa, list-conns → list-conn, …): registers
   * for `event`, collects the events charon sends before the response, unregisters.
   * Concurrent streams on one client run one after the other, so each gets only its own
   * events (a handler registered with on() for the same event also sees them).
   */
  stream(command: string, event: string, message: ViciMessage = {}, options: { timeoutMs?: number } = {}): Promise<{ events: ViciMessage[]; response: ViciMessage }> {
    // streams run one after the other: two collectors of the same event would each get both streams
    const run = async (): Promise<{ events: ViciMessage[]; response: ViciMessage }> => {
      const events: ViciMessage[] = [];
      const collect: EventHandler = (_n, m) => events.push(m);
      await this.on(event, collect);
      try {
        const response = await this.request(command, message, options);
        return { events, response };
      } finally {
        await this.off(event, collect).catch(() => undefined);
      }
    };
    const next = this.#streams.then(run, run);
    this.#streams = next.catch(() => undefined);
    return next;
  }
}
