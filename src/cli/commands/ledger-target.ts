/**
 * What `--ledger` may name (SPEC §8): a `postgres://` URL, a `sqlite:` or
 * `file:` URL, or a path whose name looks like a SQLite file. Anything else
 * (`none`, `mysql://…`, a typo) is refused before anything runs: taken as a
 * path it would silently create a ledger named after the typo.
 */
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { redactUrl } from '../../protocol/redact.js';
import { UsageError } from '../flags.js';

const POSTGRES = /^postgres(ql)?:\/\//i;
const SQLITE_NAME = /\.(sqlite3?|db)$/i;
const HOW = 'give a postgres:// URL, sqlite:PATH, file:PATH or a file ending .sqlite, .sqlite3 or .db; leave --ledger out for the default <storage-path>/ledger.sqlite (fs storage)';

/**
 * The ledger target `--ledger` names: a PostgreSQL URL as given, else an
 * absolute SQLite file path (relative ones resolved against `cwd`).
 * @throws UsageError for anything that is neither, quoting it without secrets.
 */
export function parseLedgerTarget(given: string, cwd: string): string {
  if (POSTGRES.test(given)) return given;
  const url = /^(sqlite|file):(.*)$/is.exec(given);
  if (url) {
    const rest = url[2]!;
    let path: string;
    if (rest.startsWith('//')) {
      // sqlite:///abs/path and file:///abs/path; a host part is not a local file.
      try {
        path = fileURLToPath(new URL(`file:${rest}`));
      } catch {
        throw new UsageError(`--ledger ${redactUrl(given)}: a ${url[1]!.toLowerCase()}: URL names a local file, e.g. ${url[1]!.toLowerCase()}:///var/lib/quarry/ledger.sqlite or ${url[1]!.toLowerCase()}:ledger.sqlite`);
      }
    } else {
      path = rest;
    }
    if (path === '' || path.includes('?')) throw new UsageError(`--ledger ${JSON.stringify(given)}: expected ${url[1]!.toLowerCase()}:PATH with a file path and no options; ${HOW}`);
    return isAbsolute(path) ? path : resolve(cwd, path);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(given)) throw new UsageError(`--ledger ${redactUrl(given)}: not a ledger URL; ${HOW}`);
  if (!SQLITE_NAME.test(given)) throw new UsageError(`--ledger ${JSON.stringify(given)} is neither a URL nor a SQLite file name; ${HOW}`);
  return resolve(cwd, given);
}

/**
 * The one rule for where the ledger is: the given path or URL, else
 * `ledger.sqlite` beside fs storage. `storagePath` is already resolved.
 * Here, not in ledger-common.ts, so `quarry run` does not load the read
 * commands' modules (and their YAML renderer) to find its ledger.
 * @throws UsageError for s3 storage without a ledger.
 */
export function ledgerTargetFor(backend: string, storagePath: string, given: string | undefined): string {
  if (given) return given;
  if (backend !== 'fs') throw new UsageError('--ledger is required with --storage-backend s3 (a postgres:// URL every machine shares, or a SQLite file)');
  return join(storagePath, 'ledger.sqlite');
}
