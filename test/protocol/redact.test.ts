import { describe, expect, it } from 'vitest';
import { redactJson, redactUrl, redactUrlsIn } from '../../src/protocol/redact.js';

describe('the one URL redaction rule', () => {
  it('hides a password, secret query values and a token user name; keeps where it points', () => {
    expect(redactUrl('postgres://quarry:s3cret@db:5432/x')).toBe('postgres://quarry:***@db:5432/x');
    expect(redactUrl('postgres://quarry@db/x?password=s3cret&sslmode=require')).toBe('postgres://quarry@db/x?password=***&sslmode=require');
    expect(redactUrl('ws://127.0.0.1:9222/devtools/browser/abc?token=t0k')).toBe('ws://127.0.0.1:9222/devtools/browser/abc?token=***');
    expect(redactUrl('https://ghp_abc@github.com/x.git')).toBe('https://***@github.com/x.git');
    expect(redactUrl('https://s3/b/k?X-Amz-Signature=abc&X-Amz-Credential=AKID')).toBe('https://s3/b/k?X-Amz-Signature=***&X-Amz-Credential=***');
  });
  it('leaves a URL with nothing secret exactly as written', () => {
    expect(redactUrl('http://127.0.0.1:9')).toBe('http://127.0.0.1:9');
    expect(redactUrl('postgres://quarry@db/x')).toBe('postgres://quarry@db/x');
  });
  it('never echoes an unparseable URL', () => {
    expect(redactUrl('postgres://u:hunter2@:5432/wh')).toBe('postgres://(unparseable url)');
  });
  it('finds URLs inside text and JSON, keeping sentence punctuation', () => {
    expect(redactUrlsIn('failed at http://u:pw@h/p?token=t, then (ws://h/x?token=y).')).toBe('failed at http://u:***@h/p?token=***, then (ws://h/x?token=***).');
    expect(redactJson({ url: 'http://u:pw@h/', n: 1, list: ['https://a@b/'] })).toEqual({ url: 'http://u:***@h/', n: 1, list: ['https://***@b/'] });
  });
});
