import { join } from 'node:path';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { makeTempDir } from '../_harness/temp-dir.js';
import { describeStorageConformance } from './conformance.js';

describeStorageConformance('fs', async () => {
  const dir = await makeTempDir('fs-conf');
  return { backend: await FsBackend.create(join(dir.path, 'root')), cleanup: () => dir.remove() };
});
