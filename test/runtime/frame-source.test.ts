import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/protocol/codec.js';
import { encodeFrameFdHandshake } from '../../src/protocol/frame-fd.js';
import { frameBytes } from '../../src/runtime/frame-source.js';

const item = encodeFrame({ type: 'item', n: 1 });
const small = encodeFrame({ type: 'run_result', outcome: { status: 'crash' } });

async function collect(stdoutChunks: Buffer[], offeredChunks: Buffer[] | undefined): Promise<{ frames: Buffer; stray: Buffer; offeredDestroyed: boolean }> {
  const stdout = new PassThrough();
  const offered = offeredChunks ? new PassThrough() : undefined;
  const stray: Buffer[] = [];
  const out: Buffer[] = [];
  for (const c of stdoutChunks) stdout.write(c);
  stdout.end();
  if (offered) {
    for (const c of offeredChunks!) offered.write(c);
    offered.end();
  }
  for await (const chunk of frameBytes({ stdout, offered, onStray: (c) => stray.push(c) })) out.push(chunk);
  // Let the background reader of stdout finish.
  await new Promise((r) => setImmediate(r));
  return { frames: Buffer.concat(out), stray: Buffer.concat(stray), offeredDestroyed: offered?.destroyed ?? false };
}

describe('frameBytes: the runtime reads frames where the handshake says', () => {
  it('after the handshake (split across chunks) frames come from the offered pipe and all of stdout is log output', async () => {
    const hello = encodeFrameFdHandshake();
    const r = await collect([hello.subarray(0, 2), Buffer.concat([hello.subarray(2), Buffer.from('noise ')]), item, Buffer.from('tail')], [item, small]);
    expect(r.frames).toEqual(Buffer.concat([item, small]));
    expect(r.stray).toEqual(Buffer.concat([Buffer.from('noise '), item, Buffer.from('tail')]));
  });

  it('without the handshake every stdout byte is frame stream, the first small frame included, and the offered pipe is closed', async () => {
    const r = await collect([small.subarray(0, 3), small.subarray(3), item], []);
    expect(r.frames).toEqual(Buffer.concat([small, item]));
    expect(r.stray.length).toBe(0);
    expect(r.offeredDestroyed).toBe(true);
  });

  it('a stdout that ends before deciding yields what it had (the decoder then reports the truncation)', async () => {
    const r = await collect([Buffer.from([0, 0])], []);
    expect(r.frames).toEqual(Buffer.from([0, 0]));
  });

  it('with no pipe offered, stdout is the frame stream even if it opens with a handshake', async () => {
    const hello = encodeFrameFdHandshake();
    const r = await collect([hello, item], undefined);
    expect(r.frames).toEqual(Buffer.concat([hello, item]));
  });
});
