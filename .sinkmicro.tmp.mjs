import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { RedisStreamSink, compileRedisSink, sinkTarget } from './dist/notify/redis-stream-sink.js';
const mainCpu = () => { const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
const port = 29000 + Math.floor(Math.random() * 500);
const srv = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 500));
const o = compileRedisSink({ url: `redis://127.0.0.1:${port}` });
const N = 100000;
const evs = Array.from({ length: N }, (_, k) => ({ seq: k + 1, type: 'item', ts: new Date().toISOString(), payload: { item_type: 'bench', data: { i: k } } }));
const js = evs.map((e) => JSON.stringify(e.payload));
for (const mode of ['none', 'sink', 'none', 'sink']) {
  const sink = mode === 'sink' ? new RedisStreamSink(o, `run${Math.random()}`, { dataset: 'd', source: 's', category: 'c' }, sinkTarget(o)) : undefined;
  await new Promise((r) => setTimeout(r, 300));
  const c0 = mainCpu();
  let acc = 0;
  for (let b = 0; b < N / 100; b++) {
    for (let k = b * 100; k < b * 100 + 100; k++) { if (sink) sink.offer(evs[k], js[k]); else acc += js[k].length; }
    await new Promise((r) => setTimeout(r, 1));
  }
  const c = sink ? await sink.close() : undefined;
  console.log(mode, `main thread CPU ${(mainCpu() - c0) / (N / 100000)} ms per 100k`, c ? `sent ${c.sent} dropped ${c.dropped}` : '');
}
srv.kill('SIGKILL');
process.exit(0);
