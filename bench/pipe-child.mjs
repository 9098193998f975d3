// The bare pipe ceiling: a child that encodes n item envelopes (as the SDK
// builds them: a fresh literal per event, an ISO timestamp) and writes them as
// frames to stdout, waiting only when the pipe pushes back.
import { Socket } from 'node:net';
import { encodeFrame } from '../dist/protocol/codec.js';

const n = Number(process.argv[2]);
const out = new Socket({ fd: 1, readable: false, writable: true });
for (let i = 1; i <= n; i++) {
  const frame = encodeFrame({
    contract_version: '1.0.0', event_id: `01JBENCH${String(i).padStart(18, '0')}`, run_id: 'bench', seq: i, type: 'item',
    ts: new Date().toISOString(), payload: { item_type: 'bench', data: { i, name: 'item', price_cents: 1299, tags: ['a', 'b'] } }, attempt: 1,
  });
  if (!out.write(frame)) await new Promise((r) => out.once('drain', r));
}
out.end();
