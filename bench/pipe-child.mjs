// The bare pipe ceiling: a child that writes n item envelopes as frames to
// stdout as fast as the pipe takes them (awaiting drain like the executor).
import { Socket } from 'node:net';
import { encodeFrame } from '../dist/protocol/codec.js';

const n = Number(process.argv[2]);
const out = new Socket({ fd: 1, readable: false, writable: true });
const base = { contract_version: '1.0.0', run_id: 'bench', type: 'item', attempt: 1 };
for (let i = 1; i <= n; i++) {
  const frame = encodeFrame({ ...base, event_id: `e${i}`, seq: i, ts: new Date().toISOString(), payload: { item_type: 'bench', data: { i, name: 'item', price_cents: 1299, tags: ['a', 'b'] } } });
  if (!out.write(frame)) await new Promise((r) => out.once('drain', r));
}
out.end();
