/** `quarry version`: the package version and the contract version; never contacts the executor. */
import { readFileSync } from 'node:fs';
import { CONTRACT_VERSION } from '../../protocol/envelope.js';
import type { CliIO } from '../io.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function versionCommand(argv: readonly string[], io: CliIO): number {
  const info = { version: packageVersion(), contract_version: CONTRACT_VERSION, node: process.versions.node };
  if (argv.includes('--format=json') || argv.includes('json') || !io.stdoutIsTTY) io.stdout(`${JSON.stringify(info)}\n`);
  else io.stdout(`quarry ${info.version} (contract ${info.contract_version}, node ${info.node})\n`);
  return 0;
}
