/**
 * The executor's NODE_EXTRA_CA_CERTS, without the certificates node already
 * has. Node 20 reads that file when the process starts, before any code
 * runs: it builds its root store from its bundled roots and then adds every
 * certificate of the file. A system bundle (Debian's, most CI images')
 * holds mostly node's own roots again (122 of 144 here), so the executor,
 * spawned for every run and on its critical path, parsed them twice
 * (docs/benchmarks.md, "Sixth round").
 *
 * The executor is spawned instead with NODE_EXTRA_CA_CERTS naming a file
 * with only the certificates of the user's file that node does not bundle
 * (or without the variable when there are none): the same trusted set,
 * node's roots and the file's. That file is kept in the code cache's folder
 * (`bundle-entry.ts` `cacheDir`: ours, mode 700), one per source file,
 * headed by what it was made from: the source's path, device, inode, size
 * and times, and node's version (its bundled roots change with it). When
 * it is missing or stale the executor gets the user's variable as it is and
 * the file is made at exit, parsing the source once; any doubt about the
 * source (unreadable, changed while read, not only PEM certificates, one
 * that does not parse, another node flag choosing the store) makes none,
 * so node keeps reading the user's file itself, warnings included.
 *
 * The executor puts the user's value back into its own environment
 * ({@link restoreUserExtraCaCerts}) before any script runs: what a script
 * sees and what its children inherit is the user's variable.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, utimesSync, type BigIntStats } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { cacheDir, fnv1a, writeCache } from './bundle-entry.js';

const EXTRA = 'NODE_EXTRA_CA_CERTS';
/** The user's NODE_EXTRA_CA_CERTS when the executor was given the reduced file; the executor restores it and deletes this. */
export const USER_EXTRA_CA_CERTS_ENV = 'QUARRY_USER_EXTRA_CA_CERTS';

/** The first line of a reduced file: what it was made from, then how many certificates follow. */
const HEADER = '# quarry: node roots removed from ';

/** A reduced file in use is touched when older than this, so the code cache's week-old sweep never takes it. */
const TOUCH_AFTER_MS = 24 * 3600 * 1000;

/** What a reduced file was made from: the source's path and build, node's version (its roots). */
function identityOf(path: string, st: BigIntStats): string {
  // encodeURIComponent: one line of plain ASCII whatever the path holds (PEM readers look for "-----BEGIN " at line starts).
  return encodeURIComponent(JSON.stringify([path, `${st.dev}`, `${st.ino}`, `${st.size}`, `${st.mtimeNs}`, `${st.ctimeNs}`, process.version, process.arch]));
}

/** Whether node reads its bundled roots in a child with `env` (another store makes "already bundled" meaningless). */
function bundledStore(env: NodeJS.ProcessEnv): boolean {
  const options = env.NODE_OPTIONS ?? '';
  const variables = process.config.variables as Record<string, unknown>;
  const defStore = variables.openssl_use_def_ca_store;
  return !/ca\b|openssl|cert/i.test(options) && (defStore === undefined || defStore === false || defStore === 'false' || defStore === 0)
    && env.NODE_USE_SYSTEM_CA === undefined;
}

const PENDING = Symbol.for('quarry.extraCaCertsPending');
/** Reduced files to make at exit: file → [source, identity]. */
const pending = globalThis as { [PENDING]?: Map<string, [string, string]> };

/**
 * The environment to spawn an executor (`process.execPath`) with: `env`,
 * with NODE_EXTRA_CA_CERTS naming the reduced file (or removed) when one
 * made from the user's file is current, else `env` as it is (and the file
 * is made when this process exits).
 */
export function executorCaEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out[USER_EXTRA_CA_CERTS_ENV];
  const user = env[EXTRA];
  if (user === undefined || user === '' || !bundledStore(env)) return out;
  try {
    const source = resolve(user);
    const st = statSync(source, { bigint: true });
    if (!st.isFile()) return out;
    const identity = identityOf(source, st);
    const dir = cacheDir();
    if (dir === undefined) return out;
    const file = join(dir, `extra-ca-certs-${fnv1a(identity)}.pem`);
    const count = readHeader(file, identity);
    if (count === undefined) {
      scheduleReduce(source, identity, file);
      return out;
    }
    out[USER_EXTRA_CA_CERTS_ENV] = user;
    if (count === 0) delete out[EXTRA];
    else out[EXTRA] = file;
    return out;
  } catch {
    return out;
  }
}

/** How many certificates the reduced `file` holds when it was made from `identity`; undefined when not. */
function readHeader(file: string, identity: string): number | undefined {
  const expected = `${HEADER}${identity} `;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(expected.length + 12);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.toString('latin1', 0, n);
    const m = /^(\d{1,6})\n/.exec(text.slice(expected.length));
    if (!text.startsWith(expected) || !m) return undefined;
    const st = fstatSync(fd);
    if (Date.now() - st.mtimeMs > TOUCH_AFTER_MS) utimesSync(file, new Date(), new Date());
    return Number(m[1]);
  } finally {
    closeSync(fd);
  }
}

/** Makes the reduced file for `source` when this process exits (once per file). */
function scheduleReduce(source: string, identity: string, file: string): void {
  const files = (pending[PENDING] ??= new Map());
  if (files.has(file)) return;
  files.set(file, [source, identity]);
  if (files.size === 1) {
    process.once('exit', () => {
      for (const [f, [src, id]] of files) writeCache(f, () => reduce(src, id));
    });
  }
}

/**
 * The reduced file's content: header, then each certificate of `source`
 * that node does not bundle, once. Throws on any doubt (nothing is written).
 */
function reduce(source: string, identity: string): Buffer {
  const fd = openSync(source, 'r');
  let text: string;
  try {
    const before = fstatSync(fd, { bigint: true });
    if (identityOf(source, before) !== identity) throw new Error('changed');
    const buf = Buffer.alloc(Number(before.size));
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) throw new Error('short read');
      got += n;
    }
    if (identityOf(source, fstatSync(fd, { bigint: true })) !== identity) throw new Error('changed');
    text = buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
  const require = createRequire(import.meta.url);
  const { X509Certificate } = require('node:crypto') as typeof import('node:crypto');
  const { rootCertificates } = require('node:tls') as typeof import('node:tls');
  const bundled = new Set(rootCertificates.flatMap((pem) => pemCertificates(pem).map((der) => der.toString('base64'))));
  const kept = new Map<string, string>();
  for (const der of pemCertificates(text)) {
    const cert = new X509Certificate(der);
    if (!cert.raw.equals(der)) throw new Error('trailing bytes');
    const key = der.toString('base64');
    if (!bundled.has(key)) kept.set(key, `-----BEGIN CERTIFICATE-----\n${key.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`);
  }
  return Buffer.from(`${HEADER}${identity} ${kept.size}\n${[...kept.values()].join('')}`, 'latin1');
}

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * The DER of each certificate in a PEM file, strictly: lines outside blocks
 * are ignored (as OpenSSL does) unless they start with "-----" (a block of
 * another kind); a block has base64 lines only (no headers, no blank lines,
 * no spaces; CRLF is fine). Throws otherwise, and when there is no
 * certificate at all (node warns about such a file: it stays the user's).
 */
function pemCertificates(text: string): Buffer[] {
  const out: Buffer[] = [];
  let body: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (body === undefined) {
      if (line === BEGIN) body = [];
      else if (line.startsWith('-----')) throw new Error('not a certificate block');
    } else if (line === END) {
      out.push(derOf(body));
      body = undefined;
    } else {
      body.push(line);
    }
  }
  if (body !== undefined || out.length === 0) throw new Error('no certificates');
  return out;
}

/** Strict base64 lines to bytes. */
function derOf(lines: readonly string[]): Buffer {
  const b64 = lines.join('');
  if (lines.some((l) => !/^[A-Za-z0-9+/]+={0,2}$/.test(l)) || b64.length % 4 !== 0 || /=[^=]/.test(b64)) throw new Error('not base64');
  return Buffer.from(b64, 'base64');
}

/**
 * In the executor, before any script runs: the user's NODE_EXTRA_CA_CERTS
 * back in place of the reduced file node already read.
 */
export function restoreUserExtraCaCerts(): void {
  const user = process.env[USER_EXTRA_CA_CERTS_ENV];
  if (user === undefined) return;
  process.env[EXTRA] = user;
  delete process.env[USER_EXTRA_CA_CERTS_ENV];
}
