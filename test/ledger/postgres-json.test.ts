import { describe, expect, it } from 'vitest';
import { findNulCharacter, jobRefusedByPostgres } from '../../src/ledger/postgres-json.js';

describe('U+0000 in a job (PostgreSQL jsonb refuses it)', () => {
  it('names the place of the first U+0000 in a string, an array or a key', () => {
    expect(findNulCharacter('a\u0000')).toBe('$');
    expect(findNulCharacter({ a: [1, { b: 'x\u0000y' }] })).toBe('$.a[1].b');
    expect(findNulCharacter({ 'odd key': 'v\u0000' })).toBe('$["odd key"]');
    expect(findNulCharacter({ ['k\u0000']: 1 })).toBe('$["k\\u0000"] (in the key)');
  });

  it('passes jobs without it, including the escaped text "\\u0000"', () => {
    for (const job of [undefined, null, 1, 'plain', { a: ['\\u0000', { b: true }] }]) {
      expect(findNulCharacter(job)).toBeUndefined();
      expect(jobRefusedByPostgres(job)).toBeUndefined();
    }
  });

  it('says why in one line', () => {
    expect(jobRefusedByPostgres({ q: 'a\u0000b' })).toBe('the job holds the character U+0000 at $.q, which a PostgreSQL ledger cannot store (jsonb refuses it)');
  });
});
