/**
 * How the Redis Streams sink (SPEC §11) packs events as they are ingested
 * for its writer: a line per event, `seq TAB type TAB ts TAB
 * payload-json`, lines joined by LF, as the Lua call of
 * src/notify/redis-stream-writer.ts splits them. Apart from the writer so the
 * ingesting side (and the CLI's bundle) never loads the Redis client.
 */
import { hasBinary } from '../storage/records.js';

/**
 * Events as handed to the writer: `count` events packed as the Lua call
 * takes them (see {@link packEvent}), lines joined by `\n`, as UTF-8 bytes.
 * Bytes, not a string: a queue of up to the sink's capacity waits for Redis,
 * and held as strings (each line and each join a heap object) every
 * scavenge copied it; a Buffer lives outside the JS heap.
 */
export interface WireChunk {
  bytes: Buffer;
  count: number;
}

/**
 * The chunk of `count` packed lines `text`. An ASCII text (its UTF-8 length
 * is its length) is copied out as Latin-1, the same bytes, several times
 * cheaper than Node 20's UTF-8 encoder (docs/benchmarks.md "Event sink cost").
 */
export function wireChunk(text: string, count: number): WireChunk {
  return { bytes: Buffer.from(text, Buffer.byteLength(text) === text.length ? 'latin1' : 'utf8'), count };
}

const bytesAsBase64 = (_k: string, x: unknown): unknown => (x instanceof Uint8Array ? Buffer.from(x).toString('base64') : typeof x === 'bigint' ? x.toString() : x);

/** A payload's JSON as the stream carries it: bytes as base64 strings. */
export function payloadJson(v: unknown): string {
  return JSON.stringify(v, hasBinary(v) ? bytesAsBase64 : undefined) ?? 'null';
}

/** An event type or timestamp as packed: a tab or newline in it (never seen in practice) would break the line. */
const field = (s: string): string => (s.includes('\t') || s.includes('\n') ? s.replace(/[\t\n]/g, ' ') : s);

/** One event's line of a {@link WireChunk}: `seq TAB type TAB ts TAB payload-json` (JSON holds no raw tab or newline). */
export function packEvent(seq: number, type: string, ts: string, json: string): string {
  return `${seq}\t${field(type)}\t${field(ts)}\t${json}`;
}
