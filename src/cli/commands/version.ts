/** `quarry version`: the package version and the contract version; never contacts the executor. */
import { readFileSync } from 'node:fs';
import { CONTRACT_VERSION } from '../../protocol/envelope.js';
import type { CliIO } from '../io.js';
import { OUTPUT_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError } from '../flags.js';
import { render, renderOptionsFrom } from '../render.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const FLAGS = OUTPUT_FLAGS;

export function versionCommand(argv: readonly string[], io: CliIO): number {
  const p = parseFlags(argv, FLAGS);
  if (p.help) {
    io.stdout(`Usage: quarry version [--format json|table|yaml]\n${renderFlagHelp(FLAGS)}\n`);
    return 0;
  }
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
  const info = { version: packageVersion(), contract_version: CONTRACT_VERSION, node: process.versions.node };
  const options = renderOptionsFrom(p.values, io);
  if (options.format === 'table') io.stdout(`quarry ${info.version} (contract ${info.contract_version}, node ${info.node})\n`);
  else io.stdout(render(info, options));
  return 0;
}
