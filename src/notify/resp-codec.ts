/**
 * RESP2, the Redis wire protocol, as pure functions: a command is an array of
 * bulk strings; a reply is a simple string, an error, an integer, a bulk
 * string (or null) or an array of replies. No I/O here: the socket side is
 * src/notify/resp-client.ts. Only what the event sink's writer needs, so it
 * need not load a full Redis client (SPEC §11: the sink is off the hot path,
 * and loading ioredis cost each process ~0.15 s of CPU).
 */

/** An error reply (`-ERR …`): a value, since inside an array it is one element among others. */
export class RespErrorReply {
  constructor(readonly message: string) {}
}

/** A decoded reply. Bulk strings are decoded as UTF-8. */
export type RespReply = string | number | null | RespErrorReply | RespReply[];

/** The bytes received are not RESP2: the connection cannot be trusted after it. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
}

/**
 * A command as RESP2 (an array of bulk strings), as the bytes to write. An
 * argument may be bytes already (the event sink's batch). `Buffer.byteLength`
 * gives each string argument's length in bytes without a copy; when all are
 * ASCII (byte length = length) the strings are copied out as Latin-1, which is
 * the same bytes as UTF-8 there and several times cheaper for Node 20 to make.
 */
export function encodeCommand(args: ReadonlyArray<string | Buffer>): Buffer {
  let text = `*${args.length}\r\n`;
  let ascii = true;
  const parts: Buffer[] = [];
  for (const a of args) {
    if (typeof a === 'string') {
      const n = Buffer.byteLength(a);
      if (n !== a.length) ascii = false;
      text += `$${n}\r\n${a}\r\n`;
      continue;
    }
    text += `$${a.length}\r\n`;
    parts.push(Buffer.from(text, ascii ? 'latin1' : 'utf8'), a);
    text = '\r\n';
    ascii = true;
  }
  if (parts.length === 0) return Buffer.from(text, ascii ? 'latin1' : 'utf8');
  parts.push(Buffer.from(text, ascii ? 'latin1' : 'utf8'));
  return Buffer.concat(parts);
}

/** Replies above this nesting are refused (a server never sends them to the sink; a corrupt stream might). */
const MAX_DEPTH = 32;
/** A bulk string or array length past this is taken for corruption, not data (Redis's own bulk limit is 512 MB). */
const MAX_LENGTH = 512 * 1024 * 1024;

const CR = 13;
const INCOMPLETE = Symbol('incomplete');

/**
 * Cuts a byte stream into replies. `push` takes each chunk as it arrives and
 * returns the replies it completed, in order. A reply cut across chunks waits
 * for the rest, and the parser waits until at least as many bytes as it knows
 * the reply needs have come before trying again, so a large bulk string
 * arriving in many chunks is not re-read at each one.
 * @throws RespProtocolError on bytes that are not RESP2
 */
export class ReplyParser {
  #chunks: Buffer[] = [];
  #held = 0;
  /** Bytes the reply under way needs at least, as far as is known. */
  #need = 0;
  /** End of the line or bulk the last attempt ran out at (where `#need` came from). */
  #pos = 0;

  push(chunk: Buffer): RespReply[] {
    this.#chunks.push(chunk);
    this.#held += chunk.length;
    if (this.#held < this.#need) return [];
    const buf = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#held);
    const replies: RespReply[] = [];
    let at = 0;
    for (;;) {
      this.#pos = at;
      const r = this.#read(buf, at, 0);
      if (r === INCOMPLETE) break;
      replies.push(r.value);
      at = r.next;
      if (at === buf.length) break;
    }
    const rest = at === buf.length ? undefined : buf.subarray(at);
    this.#chunks = rest === undefined ? [] : [rest];
    this.#held = rest?.length ?? 0;
    this.#need = rest === undefined ? 0 : this.#pos - at;
    return replies;
  }

  /** Bytes held for a reply not yet complete. */
  get pending(): number {
    return this.#held;
  }

  #line(buf: Buffer, at: number): number | typeof INCOMPLETE {
    const cr = buf.indexOf(CR, at);
    if (cr === -1 || cr + 1 >= buf.length) {
      this.#pos = buf.length + 1;
      return INCOMPLETE;
    }
    if (buf[cr + 1] !== 10) throw new RespProtocolError(`a line ends in CR without LF at byte ${cr}`);
    return cr;
  }

  #int(buf: Buffer, from: number, to: number): number {
    const text = buf.toString('latin1', from, to);
    if (!/^-?\d+$/.test(text)) throw new RespProtocolError(`${JSON.stringify(text.slice(0, 40))} is not an integer`);
    return Number(text);
  }

  #read(buf: Buffer, at: number, depth: number): { value: RespReply; next: number } | typeof INCOMPLETE {
    if (at >= buf.length) {
      this.#pos = at + 1;
      return INCOMPLETE;
    }
    const type = buf[at]!;
    const cr = this.#line(buf, at + 1);
    if (cr === INCOMPLETE) return INCOMPLETE;
    switch (type) {
      case 43: // '+'
        return { value: buf.toString('utf8', at + 1, cr), next: cr + 2 };
      case 45: // '-'
        return { value: new RespErrorReply(buf.toString('utf8', at + 1, cr)), next: cr + 2 };
      case 58: // ':'
        return { value: this.#int(buf, at + 1, cr), next: cr + 2 };
      case 36: { // '$'
        const len = this.#int(buf, at + 1, cr);
        if (len === -1) return { value: null, next: cr + 2 };
        if (len < 0 || len > MAX_LENGTH) throw new RespProtocolError(`bulk string length ${len}`);
        const end = cr + 2 + len;
        if (end + 2 > buf.length) {
          this.#pos = end + 2;
          return INCOMPLETE;
        }
        if (buf[end] !== CR || buf[end + 1] !== 10) throw new RespProtocolError(`a bulk string of ${len} bytes is not followed by CRLF`);
        return { value: buf.toString('utf8', cr + 2, end), next: end + 2 };
      }
      case 42: { // '*'
        const len = this.#int(buf, at + 1, cr);
        if (len === -1) return { value: null, next: cr + 2 };
        if (len < 0 || len > MAX_LENGTH) throw new RespProtocolError(`array length ${len}`);
        if (depth >= MAX_DEPTH) throw new RespProtocolError(`arrays nested past ${MAX_DEPTH} levels`);
        const items: RespReply[] = [];
        let next = cr + 2;
        for (let i = 0; i < len; i++) {
          const r = this.#read(buf, next, depth + 1);
          if (r === INCOMPLETE) return INCOMPLETE;
          items.push(r.value);
          next = r.next;
        }
        return { value: items, next };
      }
      default:
        throw new RespProtocolError(`unexpected byte 0x${type.toString(16).padStart(2, '0')} where a reply starts`);
    }
  }
}
