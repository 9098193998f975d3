/**
 * One storage per dataset per ledger (SPEC §8 "Binding and writers"). Before a
 * run claims storage, `quarry run`, `retry` (and later workers) open the
 * ledger as writers and call {@link Ledger.bindRun}: in ONE transaction it
 * binds the dataset to its storage location on first use, refuses another
 * location naming both, and reserves the run id, refusing one already
 * recorded or reserved in another dataset of the ledger. Pure helpers here;
 * the transaction lives in each backend.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseS3Path } from '../storage/open-backend.js';
import { LedgerError } from './types.js';

/** What a writer asks the ledger to bind before claiming. */
export interface RunBindingInput {
  dataset: string;
  /** The storage location, as {@link storageIdentity} spells it. */
  storage: string;
  run_id: string;
}

/** The default S3 endpoint host, for a binding made without `--storage-endpoint`. */
const AWS_S3_HOST = 's3.amazonaws.com';

/**
 * The location a dataset is bound to: fs, the real path of the storage root
 * (symlinks resolved, so two spellings of one folder are one location); s3,
 * `s3://<endpoint host>/<bucket>/<prefix>` (credentials and scheme dropped).
 * The fs root must exist (open the backend first).
 * @throws BackendOptionsError for a malformed s3 path or endpoint.
 */
export function storageIdentity(o: { backend: string; path: string; endpoint?: string }): string {
  if (o.backend === 's3') {
    const { bucket, prefix } = parseS3Path(o.path);
    const host = o.endpoint === undefined ? AWS_S3_HOST : new URL(o.endpoint).host.toLowerCase();
    return `s3://${host}/${bucket}${prefix === '' ? '' : `/${prefix}`}`;
  }
  const root = resolve(o.path);
  try {
    return `fs:${realpathSync(root)}`;
  } catch {
    return `fs:${root}`;
  }
}

/** The refusal when a dataset is bound elsewhere: names both locations and what to do. */
export function bindingConflict(dataset: string, bound: string, given: string): LedgerError {
  return new LedgerError(
    'binding_conflict',
    `dataset ${JSON.stringify(dataset)} is bound to ${bound} in this ledger, not ${given}: use that storage, another --storage-dataset, or another --ledger (one storage per dataset per ledger)`,
  );
}

/** The refusal when a run id is taken elsewhere in the ledger. */
export function runIdTaken(runId: string, where: string): LedgerError {
  return new LedgerError('run_id_conflict', `run id ${JSON.stringify(runId)} is already used by ${where} in this ledger: run ids are unique across one ledger; give another --run-id (or none: one is generated)`);
}
