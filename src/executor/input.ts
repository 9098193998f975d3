/**
 * Splits the executor's stdin (SPEC §3): phase 1 is one JSON line, the run
 * request; every byte after its newline is phase 2, frames for the {@link AckInbox}.
 */
import type { Readable } from 'node:stream';
import type { AckInbox } from './ack-inbox.js';
import { MAX_REQUEST_LINE_BYTES, RunRequestError } from './request.js';

/**
 * Resolves with the request line (without its newline) and routes the rest of
 * the stream to `inbox`. A stream that ends without a newline yields what it
 * had, so `echo -n '{…}' |` works too.
 * @throws RunRequestError when the stream ends empty or the line is too long.
 */
export function readRequestLine(input: Readable, inbox: AckInbox, maxBytes = MAX_REQUEST_LINE_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let lineDone = false;

    const finishLine = (line: Buffer): void => {
      lineDone = true;
      let text = line.toString('utf8');
      if (text.endsWith('\r')) text = text.slice(0, -1);
      resolve(text);
    };

    input.on('data', (chunk: Buffer) => {
      if (lineDone) {
        inbox.push(chunk);
        return;
      }
      const nl = chunk.indexOf(0x0a);
      if (nl === -1) {
        parts.push(chunk);
        size += chunk.length;
        if (size > maxBytes) {
          lineDone = true;
          input.destroy();
          reject(new RunRequestError(`the run request line is longer than ${maxBytes} bytes`));
        }
        return;
      }
      parts.push(chunk.subarray(0, nl));
      finishLine(Buffer.concat(parts));
      const rest = chunk.subarray(nl + 1);
      if (rest.length > 0) inbox.push(rest);
    });
    input.once('end', () => {
      if (!lineDone) {
        const rest = Buffer.concat(parts);
        if (rest.toString('utf8').trim() === '') reject(new RunRequestError('stdin ended before the run request line'));
        else finishLine(rest);
      }
      inbox.end();
    });
    input.once('error', (err) => {
      if (!lineDone) reject(new RunRequestError(`cannot read stdin: ${err.message}`));
      inbox.close(new Error(`stdin failed: ${err.message}`));
    });
  });
}
