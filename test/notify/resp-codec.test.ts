/**
 * RESP2 codec (src/notify/resp-codec.ts): commands as arrays of bulk strings
 * with byte lengths, and replies cut out of a byte stream however it is split.
 */
import { describe, expect, it } from 'vitest';
import { encodeCommand, ReplyParser, RespErrorReply, RespProtocolError, type RespReply } from '../../src/notify/resp-codec.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Every reply type, nested, with a multi-byte UTF-8 bulk string. */
const STREAM = Buffer.concat([
  bytes('+OK\r\n-ERR wrong kind\r\n:42\r\n:-7\r\n$-1\r\n*-1\r\n$0\r\n\r\n'),
  Buffer.from('$5\r\nzé\r\n\r\n', 'utf8'), // 5 bytes: z, é (two), CR, LF: read by length, not up to the first CRLF
  bytes('*3\r\n:1\r\n*2\r\n+a\r\n-NOSCRIPT x\r\n$3\r\nend\r\n'),
]);
const EXPECTED: RespReply[] = ['OK', new RespErrorReply('ERR wrong kind'), 42, -7, null, null, '', 'zé\r\n', [1, ['a', new RespErrorReply('NOSCRIPT x')], 'end']];

describe('RESP2 codec', () => {
  it('encodes a command with each argument length in bytes, not characters', () => {
    expect(encodeCommand(['SET', 'k', 'é€']).toString('utf8')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\né€\r\n');
    expect(encodeCommand(['PING']).toString('latin1')).toBe('*1\r\n$4\r\nPING\r\n');
  });

  it('sends UTF-8 whenever an argument is not ASCII, a Latin-1 character included', () => {
    // 'é' is one byte in Latin-1 and in a V8 one-byte string, but two in UTF-8: the Latin-1 shortcut must not take it.
    expect([...encodeCommand(['SET', 'k', 'café'])]).toEqual([...Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\ncafé\r\n', 'utf8')]);
    const ascii = `{"a":"${'x'.repeat(70_000)}"}`;
    expect(encodeCommand(['EVALSHA', ascii]).equals(Buffer.from(`*2\r\n$7\r\nEVALSHA\r\n$${ascii.length}\r\n${ascii}\r\n`, 'utf8'))).toBe(true);
  });

  it('decodes every reply type in one chunk', () => {
    expect(new ReplyParser().push(STREAM)).toEqual(EXPECTED);
  });

  it('gives the same replies whatever the stream is cut into, byte by byte included', () => {
    for (const size of [1, 2, 3, 5, 7, 13]) {
      const p = new ReplyParser();
      const got: RespReply[] = [];
      for (let at = 0; at < STREAM.length; at += size) got.push(...p.push(STREAM.subarray(at, at + size)));
      expect(got, `chunks of ${size}`).toEqual(EXPECTED);
      expect(p.pending).toBe(0);
    }
  });

  it('holds a large bulk string until its last byte has come, then gives it whole', () => {
    const body = 'x'.repeat(200_000);
    const wire = Buffer.from(`$${body.length}\r\n${body}\r\n:1\r\n`);
    const p = new ReplyParser();
    const got: RespReply[] = [];
    for (let at = 0; at < wire.length; at += 1000) got.push(...p.push(wire.subarray(at, at + 1000)));
    expect(got).toEqual([body, 1]);
  });

  it('refuses bytes that are not RESP2, naming what was wrong', () => {
    expect(() => new ReplyParser().push(bytes('%1\r\n'))).toThrow(new RespProtocolError('unexpected byte 0x25 where a reply starts'));
    expect(() => new ReplyParser().push(bytes(':12a\r\n'))).toThrow(/"12a" is not an integer/);
    expect(() => new ReplyParser().push(bytes('$3\r\nabcd\r\n'))).toThrow(/a bulk string of 3 bytes is not followed by CRLF/);
    expect(() => new ReplyParser().push(bytes('+OK\rX'))).toThrow(/CR without LF/);
  });
});
