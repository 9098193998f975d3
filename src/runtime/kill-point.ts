/**
 * Test-only kill points (issue 8's crash campaign; SPEC §5 "a runtime that
 * dies without a word"): named places in the runtime at which, when armed,
 * the process SIGKILLs itself, so a test can prove what a real crash at that
 * moment leaves behind (nothing running, nothing read that is not vetted, a
 * re-run that works).
 *
 * Only `cli/program.ts` arms one, from `QUARRY_TEST_KILL_POINT` (see
 * docs/contracts/run.md, "Test-only kill points"); nothing is armed otherwise,
 * and an unarmed {@link reachKillPoint} is one comparison. To add a point (a
 * crawl's, say), add its name to {@link KILL_POINTS} and call
 * `reachKillPoint(name)` where a crash should be simulated.
 */
import { writeSync } from 'node:fs';

/** Every kill point a test can arm, in the order a run reaches them. */
export const KILL_POINTS = [
  /** The run_id is claimed in storage; nothing else written yet. */
  'after_claim',
  /** A records segment holds bytes in an unpublished temporary object (strict: after an append; buffered/streaming, fs: before the link). */
  'mid_segment',
  /** A records segment was just published (not yet listed in any manifest). */
  'after_segment_published',
  /** `_manifest.json` is written; the run is not yet recorded in the ledger. */
  'after_manifest_before_ledger',
  /** Inside the validator's ledger transaction, its rows written, before the commit. */
  'during_validation',
  /** Crawl trees (SPEC §10): an enqueue's admission into the frontier committed; its run still going. */
  'tree_after_admit',
  /** Queue deployments (SPEC §12): items admitted into the Redis frontier, their BullMQ jobs not yet added. */
  'queue_before_add',
  /** Crawl trees: every item final and finalization claimed; the tree manifest not yet published. */
  'tree_finalizing',
  /** Crawl trees: the tree manifest published; the tree not yet validated. */
  'tree_published',
] as const;

/** A kill point's name. */
export type KillPointName = (typeof KILL_POINTS)[number];

/** The environment variable `cli/program.ts` reads: `<name>` or `<name>:<n>` (die the n-th time it is reached). */
export const KILL_POINT_ENV = 'QUARRY_TEST_KILL_POINT';

/** An armed point: die the `count`-th time `name` is reached. */
export interface KillPointSpec {
  readonly name: KillPointName;
  readonly count: number;
}

/**
 * Parses `<name>` or `<name>:<n>` (n ≥ 1, default 1).
 * @throws Error quoting the bad value and listing the names.
 */
export function parseKillPoint(text: string): KillPointSpec {
  const m = /^([a-z_]+)(?::(\d+))?$/.exec(text.trim());
  const name = m?.[1];
  const count = m?.[2] === undefined ? 1 : Number(m[2]);
  if (name === undefined || !(KILL_POINTS as readonly string[]).includes(name) || !Number.isSafeInteger(count) || count < 1) {
    throw new Error(`${KILL_POINT_ENV}=${JSON.stringify(text)} must be <point> or <point>:<n> (n from 1), point one of ${KILL_POINTS.join('|')}`);
  }
  return { name: name as KillPointName, count };
}

let armed: { name: KillPointName; remaining: number } | undefined;

/** Arms `spec` for this process (or disarms with undefined). Called once, by the CLI entry. */
export function armKillPoint(spec: KillPointSpec | undefined): void {
  armed = spec === undefined ? undefined : { name: spec.name, remaining: spec.count };
}

/**
 * Marks that the runtime reached `name`. When that point is armed and this is
 * its n-th time, says so on stderr (synchronously) and SIGKILLs this process:
 * no finally block, exit handler or flush runs, as in a real crash.
 */
export function reachKillPoint(name: KillPointName): void {
  if (armed === undefined || armed.name !== name) return;
  armed.remaining--;
  if (armed.remaining > 0) return;
  try {
    writeSync(2, `quarry: test kill point ${name} reached: SIGKILL\n`);
  } catch {
    // stderr gone: die anyway.
  }
  process.kill(process.pid, 'SIGKILL');
}
