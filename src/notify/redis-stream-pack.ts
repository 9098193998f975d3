/**
 * How the Redis Streams sink (SPEC §11) packs events on the ingesting thread
 * for its worker thread: a line per event, `seq TAB type TAB ts TAB
 * payload-json`, lines joined by LF, as the Lua call of
 * src/notify/redis-stream-writer.ts splits them. Apart from the writer so the
 * ingesting side (and the CLI's bundle) never loads the Redis client.
 */
import { hasBinary } from '../storage/records.js';

/**
 * Events as handed to the writer: `count` events packed as the Lua call
 * takes them (see {@link packEvent}), lines joined by `\n`. The sending
 * thread packs them as they come, so what crosses to the worker thread is
 * one string per burst, never an object per event.
 */
export interface WireChunk {
  text: string;
  count: number;
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
