import { describe, expect, it } from 'vitest';
import { AckInbox } from '../../src/executor/ack-inbox.js';
import { encodeFrame } from '../../src/protocol/index.js';

const ack = (write_id: number, ok = true, error?: string) => encodeFrame({ type: 'file_write_ack', write_id, ok, ...(error ? { error } : {}) });

describe('AckInbox', () => {
  it('delivers an ack to a waiter whether it arrives before or after the wait', async () => {
    const inbox = new AckInbox();
    inbox.push(ack(1));
    await expect(inbox.awaitAck(1)).resolves.toEqual({ type: 'file_write_ack', write_id: 1, ok: true });
    const two = inbox.awaitAck(2);
    inbox.push(ack(2, false, 'disk full'));
    await expect(two).resolves.toEqual({ type: 'file_write_ack', write_id: 2, ok: false, error: 'disk full' });
  });

  it('reassembles frames split across chunks in any place', async () => {
    const inbox = new AckInbox();
    const bytes = Buffer.concat([ack(1), ack(2), ack(3)]);
    for (let i = 0; i < bytes.length; i += 3) inbox.push(bytes.subarray(i, i + 3));
    await expect(Promise.all([inbox.awaitAck(3), inbox.awaitAck(1), inbox.awaitAck(2)])).resolves.toHaveLength(3);
  });

  it('hands the runtime\'s browser_endpoint answer to the run that asked, and an error when stdin ends first', async () => {
    const inbox = new AckInbox();
    const asked = inbox.nextBrowserEndpoint();
    inbox.push(encodeFrame({ type: 'browser_endpoint', ws_endpoint: 'ws://127.0.0.1:9/devtools/browser/x' }));
    await expect(asked).resolves.toEqual({ type: 'browser_endpoint', ws_endpoint: 'ws://127.0.0.1:9/devtools/browser/x' });
    const failed = inbox.nextBrowserEndpoint();
    inbox.push(encodeFrame({ type: 'browser_endpoint', error: 'cannot start Chromium at /nope' }));
    await expect(failed).resolves.toEqual({ type: 'browser_endpoint', error: 'cannot start Chromium at /nope' });
    const orphan = inbox.nextBrowserEndpoint();
    inbox.end();
    await expect(orphan).resolves.toMatchObject({ error: expect.stringMatching(/no browser endpoint/) });
    await expect(inbox.nextBrowserEndpoint()).resolves.toMatchObject({ error: expect.stringMatching(/stdin closed/) });
  });

  it('skips frame types it does not know, as an additive contract allows', async () => {
    const lines: string[] = [];
    const inbox = new AckInbox((l) => lines.push(l));
    inbox.push(Buffer.concat([encodeFrame({ type: 'future_control', x: 1 }), ack(1)]));
    await expect(inbox.awaitAck(1)).resolves.toMatchObject({ ok: true });
    expect(inbox.fault).toBeUndefined();
    expect(lines[0]).toMatch(/ignoring a "future_control" frame/);
  });

  it('treats a malformed frame as fatal: the fault is kept and every waiter rejects', async () => {
    const inbox = new AckInbox();
    const waiting = inbox.awaitAck(1);
    inbox.push(Buffer.from([0, 0, 0, 2, 0xd9, 0x05])); // a str8 of 5 bytes with none present
    await expect(waiting).rejects.toThrow(/fatal input frame error on stdin: malformed/);
    expect(inbox.fault).toBeInstanceOf(Error);
    inbox.push(ack(2));
    await expect(inbox.awaitAck(2)).rejects.toThrow(/malformed/);
  });

  it('treats an ack without ok as fatal', async () => {
    const inbox = new AckInbox();
    inbox.push(encodeFrame({ type: 'file_write_ack', write_id: 1 }));
    expect(inbox.fault?.message).toMatch(/file_write_ack needs write_id and ok/);
  });

  it('treats a stream that ends inside a frame as truncated', () => {
    const inbox = new AckInbox();
    inbox.push(ack(1).subarray(0, 5));
    inbox.end();
    expect(inbox.fault?.message).toMatch(/truncated/);
  });

  it('rejects waiting and later requests once stdin ends, but still hands out acks that arrived', async () => {
    const inbox = new AckInbox();
    inbox.push(ack(1));
    const waiting = inbox.awaitAck(2);
    inbox.end();
    await expect(waiting).rejects.toThrow(/stdin closed/);
    await expect(inbox.awaitAck(3)).rejects.toThrow(/stdin closed/);
    await expect(inbox.awaitAck(1)).resolves.toMatchObject({ write_id: 1 });
    expect(inbox.fault).toBeUndefined();
  });
});
