import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineSplitter, splitLines } from '../../src/storage/lines.js';

async function* chunked(bytes: Buffer, cuts: readonly number[]): AsyncIterable<Buffer> {
  let from = 0;
  for (const c of [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(from, c);
    from = c;
  }
  yield bytes.subarray(from);
}

async function collect(it: AsyncIterable<Buffer>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(l.toString('utf8'));
  return out;
}

describe('splitLines', () => {
  it('yields the same lines however the bytes are chunked (empty chunks, cuts inside multi-byte characters)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'grapheme' }).map((s) => s.replace(/\n/g, '')), { maxLength: 6 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), async (lines, lastNewline, cuts) => {
        const text = lines.join('\n') + (lastNewline && lines.length > 0 ? '\n' : '');
        // A trailing newline ends the last line; it does not start an empty one.
        const expected = text === '' ? [] : text.endsWith('\n') ? text.split('\n').slice(0, -1) : text.split('\n');
        expect(await collect(splitLines(chunked(Buffer.from(text), cuts)))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the pieces of a line that spans chunks even when the backend reuses its chunk buffer', async () => {
    const shared = Buffer.alloc(4);
    async function* reusing(): AsyncIterable<Buffer> {
      for (const part of ['ab', 'cd', 'e\nf', 'g']) {
        shared.fill(0);
        const n = shared.write(part);
        yield shared.subarray(0, n);
      }
    }
    expect(await collect(splitLines(reusing()))).toEqual(['abcde', 'fg']);
  });
});

describe('LineSplitter', () => {
  it('finds the same lines as splitLines however the bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.string({ unit: 'grapheme' }).map((s) => s.replace(/\n/g, '')), { maxLength: 6 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), async (lines, lastNewline, cuts) => {
        const bytes = Buffer.from(lines.join('\n') + (lastNewline && lines.length > 0 ? '\n' : ''));
        const found: string[] = [];
        const onLine = (l: Buffer): void => void found.push(l.toString('utf8'));
        const splitter = new LineSplitter();
        for await (const chunk of chunked(bytes, cuts)) splitter.push(chunk, onLine);
        splitter.end(onLine);
        expect(found).toEqual(await collect(splitLines(chunked(bytes, cuts))));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps the pieces of a line that spans chunks when the chunk buffer is reused', () => {
    const shared = Buffer.alloc(4);
    const found: string[] = [];
    const onLine = (l: Buffer): void => void found.push(l.toString('utf8'));
    const splitter = new LineSplitter();
    for (const part of ['ab', 'cd', 'e\nf', 'g']) {
      shared.fill(0);
      splitter.push(shared.subarray(0, shared.write(part)), onLine);
    }
    splitter.end(onLine);
    expect(found).toEqual(['abcde', 'fg']);
  });
});
