/**
 * Line splitting for JSON Lines objects read back from storage (SPEC §7), shared
 * by the reader and the validator.
 */

/**
 * Splits a byte stream into lines, without their `\n`; a last line without
 * `\n` is still a line. `\n` never occurs inside a UTF-8 multi-byte sequence,
 * so splitting bytes is safe. Linear in the stream's size however it is
 * chunked: the pieces of a line that spans chunks are kept (copied, since a
 * backend may reuse its buffers) and joined once, when the line ends — a long
 * line read in small chunks is never re-copied per chunk.
 */
export async function* splitLines(chunks: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  for await (const chunk of chunks) {
    let from = 0;
    let nl: number;
    while ((nl = chunk.indexOf(0x0a, from)) !== -1) {
      const piece = chunk.subarray(from, nl);
      from = nl + 1;
      if (parts.length === 0) {
        yield piece;
        continue;
      }
      parts.push(piece);
      const line = Buffer.concat(parts, partBytes + piece.byteLength);
      parts = [];
      partBytes = 0;
      yield line;
    }
    if (from < chunk.byteLength) {
      parts.push(Buffer.from(chunk.subarray(from)));
      partBytes += chunk.byteLength - from;
    }
  }
  if (parts.length > 0) yield Buffer.concat(parts, partBytes);
}

/**
 * The synchronous form of {@link splitLines} for a caller that walks a stream's
 * chunks itself: `push` calls `onLine` for each line the chunk completes, `end`
 * for a last line without `\n`. One call per line instead of one awaited
 * generator step: the validator reads a million lines per million events.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #partBytes = 0;

  push(chunk: Buffer, onLine: (line: Buffer) => void): void {
    let from = 0;
    let nl: number;
    while ((nl = chunk.indexOf(0x0a, from)) !== -1) {
      const piece = chunk.subarray(from, nl);
      from = nl + 1;
      if (this.#parts.length === 0) {
        onLine(piece);
        continue;
      }
      this.#parts.push(piece);
      const line = Buffer.concat(this.#parts, this.#partBytes + piece.byteLength);
      this.#parts = [];
      this.#partBytes = 0;
      onLine(line);
    }
    if (from < chunk.byteLength) {
      this.#parts.push(Buffer.from(chunk.subarray(from)));
      this.#partBytes += chunk.byteLength - from;
    }
  }

  end(onLine: (line: Buffer) => void): void {
    if (this.#parts.length === 0) return;
    const line = Buffer.concat(this.#parts, this.#partBytes);
    this.#parts = [];
    this.#partBytes = 0;
    onLine(line);
  }
}
