import { StorageError } from '../../storage/backend.js';

/** One line naming the failed operation and path, for policy failures (SPEC §7 errors). */
export function describeStorageFailure(err: unknown): string {
  if (err instanceof StorageError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
