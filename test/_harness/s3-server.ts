/**
 * A local S3 for integration tests: `s3rver` on 127.0.0.1 behind a small proxy
 * that adds the S3 behaviours Quarry relies on and s3rver lacks (SPEC §7):
 *
 * - conditional create: a PUT, or a CompleteMultipartUpload POST, carrying
 *   `If-None-Match: *` for a key that exists gets `412 PreconditionFailed`
 *   (checked with a HEAD to s3rver). Conditional writes to one key are
 *   serialized, as S3 decides them atomically; everything else is forwarded
 *   untouched (streamed; headers kept, so SigV4 signatures still verify).
 * - atomic visibility: s3rver writes objects in place and answers before the
 *   file is flushed, so a reader could see half an object. The store's
 *   `putObject` is wrapped to write a temporary file and rename it into place
 *   once complete (s3rver's own file, not Quarry's: the harness may rename).
 *
 * - ordered listings: s3rver lists in directory-walk order; S3 in UTF-8 byte
 *   order. The store's `listObjects` is wrapped to sort.
 *
 * - unknown credentials: s3rver accepts any key; the proxy answers 403
 *   `InvalidAccessKeyId`, as S3 does, for requests signed with the access key
 *   {@link UNKNOWN_ACCESS_KEY_ID}, so bad-credential paths can be tested end to end.
 *
 * - lost responses: {@link S3TestServer.dropResponse} forwards the next
 *   matching request to s3rver (so it takes effect) and then closes the
 *   client's connection without answering, as a network that loses a
 *   response does; the client's retry then meets the object it created.
 *
 * Path-style addressing only (`forcePathStyle: true`).
 */

/** Requests signed with this access key id are refused as S3 refuses an unknown key. */
export const UNKNOWN_ACCESS_KEY_ID = 'AKIAUNKNOWNTESTKEY00';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, unlink } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { makeTempDir } from './temp-dir.js';

export interface S3TestServer {
  /** The proxy's URL: give this to the S3 client. */
  readonly endpoint: string;
  /** s3rver's own URL, bypassing the proxy (for tests of the proxy itself). */
  readonly upstream: string;
  /** Test credentials (s3rver accepts any). */
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Every request the proxy saw, in arrival order, with the status it answered. */
  readonly requests: ProxiedRequest[];
  createBucket(name: string): Promise<void>;
  /**
   * Arms a one-shot fault: the next request for which `match` is true is
   * carried out by s3rver, but its response never reaches the client (the
   * connection is destroyed). Resolves the returned promise once it happened.
   */
  dropResponse(match: (method: string, url: string) => boolean): Promise<void>;
  /**
   * Stops the server as a crash or an outage would, keeping its data: every
   * open connection is cut and new ones are refused until {@link resume}.
   */
  halt(): Promise<void>;
  /** Listens again on the same port, with the data it had. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export interface ProxiedRequest {
  method: string;
  /** Path and query as sent (path style: `/bucket/key?…`). */
  url: string;
  ifNoneMatch?: string;
  /** Set once answered. */
  status?: number;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  store: {
    listObjects(bucket: string, options: ListOptions): Promise<ListResult>;
    getResourcePath(bucket: string, key: string, resource: string): string; putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>; putObject(object: S3rverObject): Promise<{ size: number; md5: string }> };
}

interface ListOptions {
  prefix?: string;
  delimiter?: string;
  startAfter?: string;
  maxKeys?: number;
}

interface ListResult {
  objects: Array<{ key: string }>;
  commonPrefixes: string[];
  isTruncated: boolean;
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * s3rver lists in directory-walk order ("a/b/…" before "a/b-c"); S3 lists in
 * UTF-8 byte order, which Quarry relies on. Lists everything under the prefix,
 * sorts, then pages (s3rver's continuation token is the last key returned).
 */
function makeListingsOrdered(server: S3rverInstance): void {
  const store = server.store;
  const original = store.listObjects.bind(store);
  store.listObjects = async (bucket, options) => {
    const all = await original(bucket, { prefix: options.prefix ?? '', delimiter: options.delimiter ?? '', maxKeys: Infinity });
    const after = options.startAfter ?? '';
    const max = options.maxKeys ?? Infinity;
    const sorted = all.objects.filter((o) => byteOrder(o.key, after) > 0).sort((x, y) => byteOrder(x.key, y.key));
    const objects = sorted.slice(0, max);
    const isTruncated = sorted.length > max;
    const last = objects[objects.length - 1]?.key;
    const commonPrefixes = all.commonPrefixes
      .filter((p) => byteOrder(p, after) > 0 && (!isTruncated || last === undefined || byteOrder(p, last) < 0))
      .sort(byteOrder);
    return { objects, commonPrefixes, isTruncated };
  };
}

interface S3rverObject {
  bucket: string;
  key: string;
  content: Buffer | NodeJS.ReadableStream;
  metadata: unknown;
}

/** Replaces s3rver's in-place object write with write-to-temp, finish, rename: readers see no object or all of it. */
function makeObjectWritesAtomic(server: S3rverInstance): void {
  const store = server.store;
  store.putObject = async (object: S3rverObject) => {
    const objectPath = store.getResourcePath(object.bucket, object.key, 'object');
    // The suffix keeps the temp file out of s3rver's listings, which only match `._S3rver_object`.
    const tmp = `${objectPath}.${randomUUID()}.partial`;
    await mkdir(dirname(objectPath), { recursive: true });
    const md5 = createHash('md5');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        md5.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    try {
      const source = Buffer.isBuffer(object.content) ? [object.content] : object.content;
      await pipeline(source as AsyncIterable<Buffer>, count, createWriteStream(tmp));
      await rename(tmp, objectPath);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

const PRECONDITION_FAILED_XML = (key: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition><Key>${escapeXml(key)}</Key><RequestId>quarry-test</RequestId></Error>`;

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Serializes async work per key, so the existence check and the write of one conditional request are not interleaved with another's. */
class KeyLocks {
  readonly #tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}

/** Is this request a conditional create we must decide? Returns the object path (`/bucket/key`) or undefined. */
function conditionalCreatePath(req: http.IncomingMessage): string | undefined {
  if (req.headers['if-none-match'] !== '*') return undefined;
  const url = new URL(req.url ?? '/', 'http://local');
  const isPut = req.method === 'PUT' && !url.searchParams.has('partNumber');
  const isComplete = req.method === 'POST' && url.searchParams.has('uploadId');
  if (!isPut && !isComplete) return undefined;
  // Path style: /bucket/key…; a bucket-only path is not an object write.
  return /^\/[^/]+\/.+/.test(url.pathname) ? url.pathname : undefined;
}

function headExists(upstreamPort: number, objectPath: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: upstreamPort, method: 'HEAD', path: objectPath }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', reject);
    req.end();
  });
}

function forward(req: http.IncomingMessage, res: http.ServerResponse, upstreamPort: number, drop = false): Promise<void> {
  return new Promise((resolve) => {
    const headers = { ...req.headers };
    // Hop-by-hop and unsigned (SigV4 never signs `expect`): the proxy already answered 100 Continue itself.
    delete headers.expect;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers }, (upRes) => {
      if (drop) {
        // The store did the work; the client never hears of it.
        upRes.resume();
        upRes.on('end', () => {
          res.socket?.destroy();
          resolve();
        });
        return;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers);
      upRes.pipe(res);
      upRes.on('end', () => resolve());
      upRes.on('error', () => resolve());
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
      resolve();
    });
    req.pipe(up);
  });
}

/**
 * Starts s3rver (silent, in a fresh temp directory, random port) and the proxy
 * in front of it, both on 127.0.0.1.
 */
export async function startS3Server(): Promise<S3TestServer> {
  const dir = await makeTempDir('s3rver');
  // s3rver ships no types; load it through require and give it the shape used here.
  const S3rver = createRequire(import.meta.url)('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance;
  const s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir.path });
  makeObjectWritesAtomic(s3rver);
  makeListingsOrdered(s3rver);
  const upstreamPort = (await s3rver.run()).port;

  const locks = new KeyLocks();
  const requests: ProxiedRequest[] = [];
  const drops: Array<{ match: (method: string, url: string) => boolean; done: () => void }> = [];
  /** Takes the armed drop that matches this request, if any. */
  const takeDrop = (req: http.IncomingMessage): (() => void) | undefined => {
    const i = drops.findIndex((d) => d.match(req.method ?? '', req.url ?? ''));
    return i === -1 ? undefined : drops.splice(i, 1)[0]!.done;
  };
  const proxy = http.createServer((req, res) => {
    const entry: ProxiedRequest = { method: req.method ?? '', url: req.url ?? '' };
    if (typeof req.headers['if-none-match'] === 'string') entry.ifNoneMatch = req.headers['if-none-match'];
    requests.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    const auth = req.headers.authorization ?? '';
    if (auth.includes(`Credential=${UNKNOWN_ACCESS_KEY_ID}/`)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>');
      return;
    }
    const dropped = takeDrop(req);
    void (async () => {
      const objectPath = conditionalCreatePath(req);
      if (objectPath === undefined) return forward(req, res, upstreamPort, dropped !== undefined).then(dropped);
      const release = await locks.acquire(objectPath);
      try {
        if (await headExists(upstreamPort, objectPath)) {
          // Read the body to its end first: answering mid-upload would reset a keep-alive connection.
          await new Promise<void>((resolve) => {
            req.on('end', resolve);
            req.on('error', () => resolve());
            req.resume();
          });
          const key = decodeURIComponent(objectPath.split('/').slice(2).join('/'));
          res.writeHead(412, { 'content-type': 'application/xml' });
          res.end(PRECONDITION_FAILED_XML(key));
          return;
        }
        await forward(req, res, upstreamPort, dropped !== undefined);
        dropped?.();
      } finally {
        release();
      }
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(`proxy: ${String(err)}`);
    });
  });
  // Answer 100 Continue ourselves (the request is then handled like any other).
  proxy.on('checkContinue', (req, res) => {
    res.writeContinue();
    proxy.emit('request', req, res);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as AddressInfo).port;
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  return {
    endpoint,
    upstream: `http://127.0.0.1:${upstreamPort}`,
    credentials,
    requests,
    async createBucket(name: string) {
      const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
      const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials });
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    dropResponse(match) {
      return new Promise<void>((resolve) => drops.push({ match, done: resolve }));
    },
    async halt() {
      const closed = new Promise<void>((resolve) => proxy.close(() => resolve()));
      proxy.closeAllConnections();
      await closed;
    },
    async resume() {
      await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    },
    async stop() {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await s3rver.close();
      await dir.remove();
    },
  };
}
