/**
 * `quarry debug ipc`: what the executor pipe speaks, and `--decode <file|->`
 * to print every frame of a captured stream as one JSON line each. Binary
 * fields print as `{ "$binary": base64, "length": n }`. A malformed or
 * truncated stream exits 1 with the byte offset of the bad frame.
 */
import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { FrameDecoder, FrameError } from '../../protocol/codec.js';
import { CONTRACT_VERSION } from '../../protocol/envelope.js';
import { FRAME_FD, FRAME_FD_ENV, FRAME_FD_HANDSHAKE_TYPE } from '../../protocol/frame-fd.js';
import { MAX_CHUNK_BYTES, MAX_FRAME_BYTES } from '../../protocol/frames.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec } from '../flags.js';
import type { CliIO } from '../io.js';

const FLAGS: readonly FlagSpec[] = [
  { name: 'decode', type: 'string', arg: 'FILE|-', help: 'Decode a captured frame stream (- for stdin) into JSON lines' },
];

const USAGE = `Usage: quarry debug ipc [--decode <file|->]

Without --decode: prints the transport the runtime and executor speak.
With --decode: prints every frame of a captured stream as one JSON line.`;

export async function debugIpcCommand(argv: readonly string[], io: CliIO, stdin: Readable): Promise<number> {
  const p = parseFlags(argv, FLAGS);
  if (p.help) {
    io.stdout(`${USAGE}\n${renderFlagHelp(FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const source = p.values.decode as string | undefined;
  if (source === undefined) {
    io.stdout(`${JSON.stringify({
      transport: `stdio: runtime → executor on stdin; executor → runtime on fd ${FRAME_FD} once the executor's stdout opens with the ${FRAME_FD_HANDSHAKE_TYPE} handshake (${FRAME_FD_ENV}=${FRAME_FD} offers it), else on stdout`,
      frame_fd: FRAME_FD,
      framing: '4-byte big-endian length prefix + msgpack payload',
      encoding: 'msgpack',
      max_frame_bytes: MAX_FRAME_BYTES,
      max_chunk_bytes: MAX_CHUNK_BYTES,
      contract_version: CONTRACT_VERSION,
    }, null, 2)}\n`);
    return 0;
  }
  const input: AsyncIterable<Buffer> = source === '-' ? (stdin as AsyncIterable<Buffer>) : createReadStream(resolve(io.cwd, source));
  const decoder = new FrameDecoder();
  let count = 0;
  try {
    for await (const chunk of input) {
      for (const frame of decoder.push(chunk)) {
        count++;
        io.stdout(`${JSON.stringify(frame, binaryAsBase64)}\n`);
      }
      if (decoder.error) throw decoder.error;
    }
    decoder.end();
  } catch (err) {
    if (err instanceof FrameError) {
      io.stderr(`quarry debug ipc: ${err.message} (after ${count} good frame(s))\n`);
      return 1;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new UsageError(`--decode ${source}: no such file`);
    throw err;
  }
  return 0;
}

function binaryAsBase64(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (raw instanceof Uint8Array) return { $binary: Buffer.from(raw).toString('base64'), length: raw.byteLength };
  return value;
}
