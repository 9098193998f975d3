// Worker-thread entry: worker threads do not inherit the TypeScript loader, so register tsx here, then load the TS entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
