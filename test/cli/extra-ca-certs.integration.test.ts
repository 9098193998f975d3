/**
 * The executor's NODE_EXTRA_CA_CERTS without node's bundled roots
 * (src/runtime/extra-ca-certs.ts): a private CA in the user's bundle is
 * trusted by ctx.http and by node's https on the first run (the user's file)
 * and on later ones (the reduced file, checked to hold exactly that CA); a
 * changed bundle is not served from the old file; the script sees the
 * user's value. The runs' TMPDIR is the test's, so the cache starts empty.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPT = join(REPO_ROOT, 'test/fixtures/extra-ca-certs/tls-get.ts');
let tmp: TempDir;
let server: Server;
let url: string;
let caPem: string;
let bundle: string;
let cacheDir: string;
let runs = 0;

interface Seen {
  http: string;
  plain: string;
  env: { extra: string | null; user: string | null; started: string | null };
}

beforeAll(async () => {
  tmp = await makeTempDir('extra-ca-certs');
  const at = (name: string) => join(tmp.path, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '2', '-subj', '/CN=Quarry test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', at('srv.key'), '-out', at('srv.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(at('srv.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', at('srv.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('srv.pem'), '-days', '2', '-extfile', at('srv.ext'));
  caPem = readFileSync(at('ca.pem'), 'utf8');
  server = createServer({ key: readFileSync(at('srv.key')), cert: readFileSync(at('srv.pem')) }, (_req, res) => res.end('hello'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  // The user's bundle: some of node's own roots around the private CA.
  bundle = at('bundle.pem');
  writeFileSync(bundle, [rootCertificates[0], rootCertificates[1], caPem.trim(), rootCertificates[2]].join('\n') + '\n');
  cacheDir = join(tmp.path, 'tmp', `quarry-code-cache-${process.getuid!()}`);
  execFileSync('mkdir', ['-p', join(tmp.path, 'tmp')]);
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await tmp.remove();
});

/** One run of tls-get.ts with `extra` as NODE_EXTRA_CA_CERTS (undefined: unset); what the script saw. */
async function run(extra: string | undefined): Promise<Seen> {
  const n = ++runs;
  const out = join(tmp.path, `seen-${n}.json`);
  const res = await quarry(['run', '--script', SCRIPT, '--source', 'ca', '--run-id', `ca-${n}`, '--job', JSON.stringify({ url, out }), '--storage-path', join(tmp.path, 'data'), '--quiet'], {
    env: { NODE_EXTRA_CA_CERTS: extra, TMPDIR: join(tmp.path, 'tmp') },
  });
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(readFileSync(out, 'utf8')) as Seen;
}

/** The reduced files in the runs' cache folder, newest name last is not implied: a set. */
function reducedFiles(): string[] {
  try {
    return readdirSync(cacheDir).filter((f) => f.startsWith('extra-ca-certs-') && f.endsWith('.pem')).map((f) => join(cacheDir, f));
  } catch {
    return [];
  }
}

/** SHA-256 fingerprints of the certificates of a PEM file. */
function fingerprints(file: string): string[] {
  return (readFileSync(file, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem).fingerprint256);
}

describe('the executor started with NODE_EXTRA_CA_CERTS reduced to what node does not bundle', () => {
  it('trusts a private CA of the bundle on the first run and from the reduced file on the next; the script sees the user value', async () => {
    const first = await run(bundle);
    expect(first.http).toBe('ok hello');
    expect(first.plain).toBe('ok hello');
    expect(first.env).toEqual({ extra: bundle, user: null, started: bundle });
    const made = reducedFiles();
    expect(made).toHaveLength(1);
    expect(fingerprints(made[0]!)).toEqual([new X509Certificate(caPem).fingerprint256]);

    const second = await run(bundle);
    expect(second.env).toEqual({ extra: bundle, user: null, started: made[0] });
    expect(second.http).toBe('ok hello');
    expect(second.plain).toBe('ok hello');
  });

  it('fails with a certificate error without the variable', async () => {
    const seen = await run(undefined);
    expect(seen.http).toMatch(/^failed .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(seen.plain).toMatch(/^failed .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    expect(seen.env).toEqual({ extra: null, user: null, started: null });
  });

  it('does not use the reduced file of a bundle since changed (a root appended, then a touch)', async () => {
    const before = new Set(reducedFiles());
    appendFileSync(bundle, rootCertificates[3] + '\n');
    const appended = await run(bundle);
    expect(appended.env.started).toBe(bundle);
    expect(appended.http).toBe('ok hello');
    const made = reducedFiles().filter((f) => !before.has(f));
    expect(made).toHaveLength(1);
    expect(fingerprints(made[0]!)).toEqual([new X509Certificate(caPem).fingerprint256]);

    const later = new Date(Date.now() + 5000);
    utimesSync(bundle, later, later);
    const touched = await run(bundle);
    expect(touched.env.started).toBe(bundle);
    expect(touched.plain).toBe('ok hello');
  });

  it('starts the executor without the variable when node bundles every certificate of the file', async () => {
    const roots = join(tmp.path, 'roots.pem');
    writeFileSync(roots, rootCertificates.slice(4, 8).join('\n') + '\n');
    const first = await run(roots);
    expect(first.env.started).toBe(roots);
    const second = await run(roots);
    expect(second.env).toEqual({ extra: roots, user: null, started: null });
    // The private CA is not in that file: not trusted either way.
    expect(second.http).toMatch(/^failed .*UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  });

  it('makes no reduced file from a bundle holding anything but certificates', async () => {
    const mixed = join(tmp.path, 'mixed.pem');
    writeFileSync(mixed, caPem + readFileSync(join(tmp.path, 'srv.key'), 'utf8'));
    const before = reducedFiles().length;
    const seen = await run(mixed);
    expect(seen.env.started).toBe(mixed);
    expect(seen.http).toBe('ok hello');
    expect(reducedFiles()).toHaveLength(before);
  });
});
