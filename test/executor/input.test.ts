import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AckInbox } from '../../src/executor/ack-inbox.js';
import { readRequestLine } from '../../src/executor/input.js';
import { RunRequestError } from '../../src/executor/request.js';
import { encodeFrame } from '../../src/protocol/index.js';

describe('readRequestLine', () => {
  it('returns the first line, split over chunks, and hands the bytes after it to the ack inbox', async () => {
    const input = new PassThrough();
    const inbox = new AckInbox();
    const line = readRequestLine(input, inbox);
    const ack = encodeFrame({ type: 'file_write_ack', write_id: 1, ok: true });
    input.write('{"run_id":"r",');
    input.write(Buffer.concat([Buffer.from('"attempt":1}\r\n'), ack.subarray(0, 3)]));
    input.write(ack.subarray(3));
    await expect(line).resolves.toBe('{"run_id":"r","attempt":1}');
    await expect(inbox.awaitAck(1)).resolves.toMatchObject({ ok: true });
  });

  it('accepts a last line without a newline at end of stream', async () => {
    const input = new PassThrough();
    const line = readRequestLine(input, new AckInbox());
    input.end('{"a":1}');
    await expect(line).resolves.toBe('{"a":1}');
  });

  it('rejects an empty stdin and a line over the limit', async () => {
    const empty = new PassThrough();
    const p1 = readRequestLine(empty, new AckInbox());
    empty.end();
    await expect(p1).rejects.toBeInstanceOf(RunRequestError);
    const long = new PassThrough();
    const p2 = readRequestLine(long, new AckInbox(), 10);
    long.write('x'.repeat(11));
    await expect(p2).rejects.toThrow(/longer than 10 bytes/);
  });
});
