/**
 * Flags shared by `run` and every read command: where the storage is and how
 * output is rendered.
 */
import type { FlagSpec } from './flags.js';

export const DEFAULT_STORAGE_PATH = './quarry-data';

export const STORAGE_FLAGS: readonly FlagSpec[] = [
  { name: 'storage-dataset', type: 'string', arg: 'NAME', default: 'quarry', help: 'Dataset name (the datasets/<name>/ prefix)', group: 'Storage' },
  { name: 'storage-backend', type: 'string', arg: 'fs|s3', default: 'fs', choices: ['fs', 's3'], help: 'Storage backend', group: 'Storage' },
  { name: 'storage-path', type: 'string', arg: 'PATH', default: DEFAULT_STORAGE_PATH, help: 'fs: directory (created if missing); s3: bucket/prefix', group: 'Storage' },
  { name: 'storage-region', type: 'string', arg: 'REGION', help: 'S3 region (default: the AWS default chain)', group: 'Storage' },
  { name: 'storage-endpoint', type: 'string', arg: 'URL', help: 'S3-compatible endpoint URL', group: 'Storage' },
  { name: 'storage-s3-path-style', type: 'bool', help: 'Use path-style S3 addressing (most S3-compatible servers)', group: 'Storage' },
  { name: 'storage-request-timeout', type: 'duration', help: 'S3: fail a request after this long without a byte moving, then the SDK retries it (default 30s)', group: 'Storage' },
];

export const OUTPUT_FLAGS: readonly FlagSpec[] = [
  { name: 'format', short: 'f', type: 'string', arg: 'json|table|yaml', choices: ['json', 'table', 'yaml'], help: 'Output format (default: table on a TTY, json otherwise)', group: 'Output' },
  { name: 'no-color', type: 'bool', help: 'No colors in table output', group: 'Output' },
];
