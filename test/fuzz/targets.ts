/** Every fuzz target by name (`npm run fuzz -- --target <name>`). */
import { framesTarget } from './frames-target.js';
import type { FuzzTarget } from './harness.js';
import { manifestTarget, recordsTarget } from './storage-targets.js';

export const TARGETS: Record<string, FuzzTarget<never>> = {
  frames: framesTarget as FuzzTarget<never>,
  manifest: manifestTarget as FuzzTarget<never>,
  records: recordsTarget as FuzzTarget<never>,
};
