import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserHandle } from '../../src/executor/browser.js';
import type { FileWriteFrame } from '../../src/protocol/index.js';
import { events, fixture, runExecutor, runResult, sharedBrowser, startExecutor, tempDir } from '../_harness/executor-harness.js';

let browser: { handle: BrowserHandle; wsEndpoint: string };
const tmp = tempDir();
beforeAll(async () => {
  browser = await sharedBrowser();
});
afterAll(async () => {
  await browser?.handle.close();
  tmp.remove();
});
const request = (job: unknown = null, extra: Record<string, unknown> = {}) => ({ run_id: 'run-x', attempt: 1, job, browser_ws_endpoint: browser.wsEndpoint, ...extra });

describe('script loading', () => {
  it('runs a TypeScript script whose only SDK import is `import type` from @pithecene-io/quarry-sdk', async () => {
    const run = await runExecutor(fixture('type-import.ts'), request({ greeting: 'hi' }));
    expect(events(run.frames).map((e) => [e.type, e.payload])).toEqual([
      ['item', { item_type: 'greeting', data: { text: 'hi' } }],
      ['run_complete', {}],
    ]);
    expect(run.code).toBe(0);
  });

  it('runs the same script from a folder without package.json (CommonJS scope)', async () => {
    const dir = tempDir('quarry-cjs-');
    try {
      const script = join(dir.dir, 'scrape.ts');
      copyFileSync(fixture('type-import.ts'), script);
      const run = await runExecutor(script, request({ greeting: 'cjs' }));
      expect(run.stderr).toBe('');
      expect(events(run.frames)[0]?.payload).toEqual({ item_type: 'greeting', data: { text: 'cjs' } });
      expect(run.code).toBe(0);
    } finally {
      dir.remove();
    }
  });

  it('resolves value imports of quarry/sdk and @pithecene-io/quarry-sdk for a script outside the package', async () => {
    const dir = tempDir('quarry-esm-');
    try {
      const script = join(dir.dir, 'values.mts');
      copyFileSync(fixture('sdk-values.mts'), script);
      const run = await runExecutor(script, request());
      expect(events(run.frames).map((e) => [e.type, e.payload])).toEqual([
        ['enqueue', { target: 'detail.ts', params: { items: [{ id: 1 }, { id: 2 }] } }],
        ['item', { item_type: 'check', data: { filenameError: true, terminalClass: 'function' } }],
        ['run_complete', {}],
      ]);
    } finally {
      dir.remove();
    }
  });

  it('resolves quarry/sdk for a .mjs script outside the package whose relative helper imports it', async () => {
    const dir = tempDir('quarry-mjs-sdk-');
    try {
      mkdirSync(join(dir.dir, 'lib'));
      writeFileSync(join(dir.dir, 'lib', 'check.mjs'), "import { StorageFilenameError } from 'quarry/sdk';\nexport const isFilenameError = (e) => e instanceof StorageFilenameError;\n");
      const script = join(dir.dir, 'main.mjs');
      writeFileSync(script, "import { isFilenameError } from './lib/check.mjs';\nexport default async function run(ctx) {\n  const err = await ctx.storage.put({ filename: '../escape', content_type: 'text/plain', data: 'x' }).catch((e) => e);\n  await ctx.emit.item({ item_type: 'check', data: { filenameError: isFilenameError(err) } });\n}\n");
      const run = await runExecutor(script, request());
      expect(events(run.frames)[0]?.payload, run.stderr).toEqual({ item_type: 'check', data: { filenameError: true } });
      expect(run.code).toBe(0);
    } finally {
      dir.remove();
    }
  });

  it('runs a plain .mjs script', async () => {
    const run = await runExecutor(fixture('simple.mjs'), request(null, { run_id: 'run-js' }));
    expect(events(run.frames)[0]?.payload).toEqual({ item_type: 'js', data: { run_id: 'run-js' } });
    expect(run.code).toBe(0);
  });
});

describe('stdout carries frames only', () => {
  it('diverts console.log, console.info, console.table and process.stdout.write (text and bytes) to stderr', async () => {
    const run = await runExecutor(fixture('stray-stdout.ts'), request());
    expect(run.decodeError).toBeUndefined();
    expect(events(run.frames).map((e) => (e.type === 'item' ? e.payload.data.i : e.type))).toEqual([1, 2, 3, 'run_complete']);
    expect(runResult(run.frames)?.outcome.status).toBe('completed');
    for (const noise of ['console.log noise', 'process.stdout.write noise', 'console.info noise 42', 'callback noise']) expect(run.stderr).toContain(noise);
    expect(run.code).toBe(0);
  });
});

describe('exit codes', () => {
  it('0 when the run completes, with run_result last', async () => {
    const run = await runExecutor(fixture('type-import.ts'), request({ greeting: 'x' }));
    expect(run.code).toBe(0);
    expect(run.frames.at(-1)?.type).toBe('run_result');
  });

  it('1 when the script throws, with run_error script_error', async () => {
    const run = await runExecutor(fixture('throws.ts'), request());
    expect(run.code).toBe(1);
    expect(events(run.frames).map((e) => e.type)).toEqual(['log', 'run_error']);
    expect(runResult(run.frames)?.outcome).toMatchObject({ status: 'error', error_type: 'script_error', message: 'the page had no prices' });
  });

  it('1 with run_error emit_failed when an emit the script did not await failed; the other emits keep the values passed', async () => {
    const run = await runExecutor(fixture('unawaited-emit.ts'), request());
    expect(run.code).toBe(1);
    const evs = events(run.frames);
    expect(evs.map((e) => [e.seq, e.type])).toEqual([[1, 'item'], [2, 'item'], [3, 'run_error']]);
    expect(evs[1]!.payload).toEqual({ item_type: 'book', data: { title: 'before', when: '2026-11-23T12:00:00.000Z' } });
    expect(evs[2]!.payload).toMatchObject({ error_type: 'emit_failed' });
    expect(runResult(run.frames)?.outcome).toMatchObject({ status: 'error', error_type: 'emit_failed' });
    expect(runResult(run.frames)?.outcome.message).toMatch(/item_type must be a non-empty string/);
  });

  it('2 when the browser cannot start, reported on stderr and in run_result, with no terminal event', async () => {
    const run = await runExecutor(fixture('type-import.ts'), { run_id: 'r', attempt: 1, job: { greeting: 'x' } }, { env: { QUARRY_CHROMIUM_PATH: '/nonexistent/chromium' } });
    expect(run.code).toBe(2);
    expect(events(run.frames)).toEqual([]);
    expect(runResult(run.frames)?.outcome.status).toBe('crash');
    expect(runResult(run.frames)?.outcome.message).toMatch(/browser failed to start: cannot start Chromium at \/nonexistent\/chromium/);
    expect(run.stderr).toMatch(/executor crash: browser failed to start/);
  });

  it('2 when the browser endpoint cannot be reached', async () => {
    const run = await runExecutor(fixture('type-import.ts'), request({ greeting: 'x' }, { browser_ws_endpoint: 'ws://127.0.0.1:9/devtools/browser/none' }));
    expect(run.code).toBe(2);
    expect(runResult(run.frames)?.outcome.message).toMatch(/cannot connect to the browser at ws:\/\/127\.0\.0\.1:9/);
  });

  it('3 for a request line that is not JSON, with the reason on stderr and nothing on stdout', async () => {
    const run = await runExecutor(fixture('type-import.ts'), 'not json\n');
    expect(run.code).toBe(3);
    expect(run.frames).toEqual([]);
    expect(run.stderr).toMatch(/invalid run request: the run request line is not JSON/);
  });

  it('3 for a request that lacks attempt or has a bad proxy', async () => {
    const a = await runExecutor(fixture('type-import.ts'), { run_id: 'r', job: null });
    expect(a.code).toBe(3);
    expect(a.stderr).toMatch(/attempt must be an integer >= 1/);
    const b = await runExecutor(fixture('type-import.ts'), { run_id: 'r', attempt: 1, job: null, proxy: { protocol: 'ftp', host: 'h', port: 1, password: 'hunter2' } });
    expect(b.code).toBe(3);
    expect(b.stderr).toMatch(/protocol: must be one of http\|https\|socks5/);
    expect(b.stderr).not.toContain('hunter2');
  });

  it('3 when stdin closes before the request line', async () => {
    const run = await runExecutor(fixture('type-import.ts'), '');
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/stdin ended before the run request line/);
  });

  it('3 for a script without a default export, with a crash run_result naming the problem', async () => {
    const run = await runExecutor(fixture('no-default.ts'), request());
    expect(run.code).toBe(3);
    expect(events(run.frames)).toEqual([]);
    expect(runResult(run.frames)?.outcome.message).toMatch(/the default export must be a function/);
  });

  it('3 for a script that does not exist, and for a missing script argument', async () => {
    const missing = await runExecutor(fixture('nope.ts'), request());
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/script not found/);
    const noArg = await startExecutor(request()).done;
    expect(noArg.code).toBe(3);
    expect(noArg.stderr).toMatch(/usage:/);
  });
});

describe('--validate', () => {
  /** A fake Chromium that only leaves a marker: proof of whether anything tried to launch a browser. */
  function fakeChromium(): { path: string; marker: string } {
    const marker = join(tmp.dir, `launched-${Math.random().toString(36).slice(2)}`);
    const path = join(tmp.dir, `fake-chromium-${Math.random().toString(36).slice(2)}.sh`);
    writeFileSync(path, `#!/bin/sh\ntouch ${marker}\nexit 1\n`);
    chmodSync(path, 0o755);
    return { path, marker };
  }

  it('accepts a valid script with hooks, exit 0, without launching a browser', async () => {
    const fake = fakeChromium();
    const run = await startExecutor(undefined, { args: ['--validate', fixture('hooks.ts')], env: { QUARRY_CHROMIUM_PATH: fake.path } }).done;
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/valid: .*hooks\.ts \(default export, hooks: prepare, beforeRun, afterRun, onError, beforeTerminal, cleanup\)/);
    expect(run.frames).toEqual([]);
    expect(existsSync(fake.marker)).toBe(false);
  });

  it('rejects a script without a default export with exit 3 and a one-line reason, without launching a browser', async () => {
    const fake = fakeChromium();
    const run = await startExecutor(undefined, { args: ['--validate', fixture('no-default.ts')], env: { QUARRY_CHROMIUM_PATH: fake.path } }).done;
    expect(run.code).toBe(3);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/invalid script: .*no-default\.ts: the default export must be a function.*got no default export/);
    expect(existsSync(fake.marker)).toBe(false);
  });

  it('rejects a hook export that is not a function', async () => {
    const run = await startExecutor(undefined, { args: ['--validate', fixture('bad-hook.ts')] }).done;
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/the "cleanup" export must be a function \(it is a hook\), got a string/);
  });
});

describe('storage.put over the pipe', () => {
  it('sends file_write frames with write_id from 1 and resolves or rejects each put by the ack the runtime writes on stdin', async () => {
    const storage = { dataset: 'shop', source: 'acme', category: 'shoes', day: '2024-05-01', run_id: 'run-s' };
    const writes: FileWriteFrame[] = [];
    const run = await runExecutor(fixture('storage.ts'), request(null, { run_id: 'run-s', storage }), {
      onFrame(frame, reply) {
        if (frame.type !== 'file_write') return;
        writes.push(frame);
        const refuse = frame.filename === 'refused.bin';
        // Answer out of order: the executor matches acks by write_id.
        setTimeout(() => reply({ type: 'file_write_ack', write_id: frame.write_id, ok: !refuse, ...(refuse ? { error: 'disk full' } : {}) }), refuse ? 1 : 30);
      },
    });
    expect(run.code).toBe(0);
    expect(writes.map((w) => [w.write_id, w.filename, w.content_type, Buffer.from(w.data).toString('hex')])).toEqual([
      [1, 'page.html', 'text/html', Buffer.from('<html>1</html>').toString('hex')],
      [2, 'refused.bin', 'application/octet-stream', '010203'],
      [3, 'notes.txt', 'text/plain', Buffer.from('hello').toString('hex')],
    ]);
    const prefix = 'datasets/shop/partitions/source=acme/category=shoes/day=2024-05-01/run_id=run-s/files/';
    expect(events(run.frames).filter((e) => e.type === 'item').map((e) => e.payload)).toEqual([
      { item_type: 'put', data: { key: `${prefix}page.html` } },
      { item_type: 'put', data: { error: 'StorageWriteError', message: 'storage.put("refused.bin") failed (write_id 2): disk full' } },
      { item_type: 'put', data: { key: `${prefix}notes.txt` } },
    ]);
  });

  it('rejects pending puts when stdin closes before their acks, and the run still completes', async () => {
    const run = await runExecutor(fixture('storage.ts'), request());
    expect(run.code).toBe(0);
    const items = events(run.frames).filter((e) => e.type === 'item').map((e) => e.payload.data);
    expect(items).toHaveLength(3);
    for (const d of items) expect(d).toMatchObject({ error: 'StorageWriteError', message: expect.stringMatching(/no acknowledgement from the runtime \(stdin closed/) });
  });

  it('ends the run as a crash when stdin carries a malformed frame, failing the waiting puts', async () => {
    const s = startExecutor(request(), {
      args: [fixture('storage.ts')],
      onFrame(frame) {
        // A str8 header announcing 5 bytes, with none present: not msgpack.
        if (frame.type === 'file_write' && frame.write_id === 1) s.child.stdin!.write(Buffer.from([0, 0, 0, 2, 0xd9, 0x05]));
      },
    });
    const run = await s.done;
    expect(run.code).toBe(2);
    expect(runResult(run.frames)?.outcome).toMatchObject({ status: 'crash', message: expect.stringMatching(/fatal input frame error on stdin: malformed frame/) });
    const items = events(run.frames).filter((e) => e.type === 'item').map((e) => e.payload.data);
    expect(items.map((d) => d.error)).toEqual(['StorageWriteError', 'StorageWriteError', 'StorageWriteError']);
  });
});


describe('launching Chromium', () => {
  it('launches the system Chromium when no endpoint is given and deletes its temporary profile before exit', async () => {
    const tmpRoot = tempDir('quarry-tmproot-');
    try {
      const run = await runExecutor(fixture('type-import.ts'), { run_id: 'r', attempt: 1, job: { greeting: 'launched' } }, { env: { TMPDIR: tmpRoot.dir } });
      expect(run.code).toBe(0);
      expect(events(run.frames)[0]?.payload).toEqual({ item_type: 'greeting', data: { text: 'launched' } });
      expect(readdirSync(tmpRoot.dir).filter((n) => n.startsWith('quarry-chromium-'))).toEqual([]);
    } finally {
      tmpRoot.remove();
    }
  });

  it('on SIGTERM closes the browser, deletes its profile and dies of the signal', async () => {
    const tmpRoot = tempDir('quarry-tmproot-');
    try {
      let started!: () => void;
      const itemSeen = new Promise<void>((r) => (started = r));
      const s = startExecutor({ run_id: 'r', attempt: 1, job: null }, {
        args: [fixture('hang.ts')],
        env: { TMPDIR: tmpRoot.dir },
        onFrame: (f) => {
          if (f.type === 'item') started();
        },
      });
      await itemSeen;
      expect(readdirSync(tmpRoot.dir).filter((n) => n.startsWith('quarry-chromium-'))).toHaveLength(1);
      s.child.kill('SIGTERM');
      const run = await s.done;
      expect(run.signal).toBe('SIGTERM');
      expect(run.stderr).toMatch(/SIGTERM received: closing the browser/);
      expect(readdirSync(tmpRoot.dir).filter((n) => n.startsWith('quarry-chromium-'))).toEqual([]);
    } finally {
      tmpRoot.remove();
    }
  });
});
