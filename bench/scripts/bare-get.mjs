// The reference for bench/no-browser-run.mjs: a bare node script that GETs one
// URL (node:http, nothing to load) and writes the body to one file with fsync.
//   node bench/scripts/bare-get.mjs <url> <file>
import { openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { get } from 'node:http';

const [url, file] = process.argv.slice(2);
get(url, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    const fd = openSync(file, 'wx');
    writeSync(fd, JSON.stringify({ url, status: res.statusCode, bytes: Buffer.concat(chunks).length }) + '\n');
    fsyncSync(fd);
    closeSync(fd);
  });
}).on('error', (err) => {
  process.stderr.write(`${err.message}\n`);
  process.exitCode = 1;
});
