import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/protocol/codec.js';
import { detectFrameFd, encodeFrameFdHandshake, FRAME_FD } from '../../src/protocol/frame-fd.js';

const hello = encodeFrameFdHandshake();
const runResult = encodeFrame({ type: 'run_result', outcome: { status: 'crash' } });

describe('detectFrameFd: what the first bytes of an executor stdout say', () => {
  it('the handshake for the offered fd, split anywhere, is recognised once complete, with its length consumed', () => {
    for (let cut = 0; cut < hello.length; cut++) expect(detectFrameFd(hello.subarray(0, cut))).toEqual({ kind: 'undecided' });
    expect(detectFrameFd(hello)).toEqual({ kind: 'fd', fd: FRAME_FD, consumed: hello.length });
    const withNoise = Buffer.concat([hello, Buffer.from('log line\n')]);
    expect(detectFrameFd(withNoise)).toEqual({ kind: 'fd', fd: FRAME_FD, consumed: hello.length });
  });

  it('is the literal frame {type: frame_fd, fd: 3}: 4-byte length, then a msgpack map', () => {
    expect(hello.toString('hex')).toBe('00000013' + '82a474797065a866' + '72616d655f6664a2666403');
  });

  it('a small first frame of another type means frames on stdout', () => {
    expect(runResult.length).toBeLessThan(64);
    expect(detectFrameFd(runResult)).toEqual({ kind: 'stdout' });
  });

  it('a first frame whose declared length is over the handshake size decides at once, without waiting for it', () => {
    const header = Buffer.from([0, 0, 1, 0]);
    expect(detectFrameFd(header)).toEqual({ kind: 'stdout' });
  });

  it('garbage, an empty frame, a non-map payload or a handshake for another fd mean frames on stdout', () => {
    expect(detectFrameFd(Buffer.from('hello world\n'))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(Buffer.from([0, 0, 0, 0]))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(Buffer.from([0, 0, 0, 2, 0xc1, 0xc1]))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(encodeFrame('frame_fd'))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(encodeFrame({ type: 'frame_fd', fd: 4 }))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(encodeFrame({ type: 'frame_fd', fd: '3' }))).toEqual({ kind: 'stdout' });
    expect(detectFrameFd(encodeFrameFdHandshake(4), 4)).toEqual({ kind: 'fd', fd: 4, consumed: encodeFrameFdHandshake(4).length });
  });
});
