/** The wire protocol between executor and runtime (SPEC §3, §4). Pure: no streams, no process. */
export * from './envelope.js';
export * from './frames.js';
export * from './codec.js';
export * from './wire-value.js';
export * from './frame-fd.js';
