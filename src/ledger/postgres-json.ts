/**
 * PostgreSQL's `jsonb` refuses the character U+0000 anywhere in a document
 * ("unsupported Unicode escape sequence"), while JSON, SQLite and the storage
 * manifests accept it. A job is stored in `run_history.job` (jsonb), so a job
 * holding U+0000 cannot be recorded in a PostgreSQL ledger: these helpers find
 * where it is, so the refusal can name the place instead of PostgreSQL's words.
 */

/** The JSONPath-like place (`$.a[2].b`) of the first U+0000 in a key or string of `value`, if any. */
export function findNulCharacter(value: unknown, path = '$'): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNulCharacter(value[i], `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const at = `${path}${/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}`;
      if (k.includes('\u0000')) return `${at} (in the key)`;
      const found = findNulCharacter(v, at);
      if (found) return found;
    }
  }
  return undefined;
}

/** The one-line reason a job cannot go into a PostgreSQL ledger, or undefined when it can. */
export function jobRefusedByPostgres(job: unknown): string | undefined {
  const at = findNulCharacter(job);
  return at === undefined ? undefined : `the job holds the character U+0000 at ${at}, which a PostgreSQL ledger cannot store (jsonb refuses it)`;
}
