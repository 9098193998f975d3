/**
 * The fuzz runner shared by the CI sample (test/fuzz/*.test.ts) and the full
 * campaign (`npm run fuzz`): runs one target's property under fast-check with
 * a seed, counts the labels each input produced (error classes and codes
 * reached), and fails an input that throws anything undocumented or takes
 * longer than the per-input limit. It runs inside a worker thread
 * (worker.ts) so a synchronous hang can be stopped from outside.
 */
import fc from 'fast-check';

export interface FuzzTarget<I> {
  name: string;
  arbitrary: fc.Arbitrary<I>;
  /**
   * Runs one input through the parsers and returns labels for what happened
   * (`FrameError:truncated`, `reason:seq_inconsistent`, `accepted` …).
   * Documented errors are caught and labelled; anything thrown is a bug.
   */
  run(input: I): string[] | Promise<string[]>;
  /** Labels every documented error class or code maps to: each must be reached. */
  required: readonly string[];
}

export interface FuzzOptions {
  seed: number;
  numRuns: number;
  /** An input slower than this fails the property. */
  perInputMs: number;
  /** Called every `progressEvery` inputs (the watchdog's heartbeat). */
  onProgress?: (inputs: number) => void;
  progressEvery?: number;
}

export interface FuzzResult {
  target: string;
  seed: number;
  inputs: number;
  ms: number;
  inputsPerSecond: number;
  /**
   * CPU time of the process meanwhile (user + system, every thread: the
   * parent only waits), so a figure taken on a loaded machine still says what
   * a quiet one would do.
   */
  cpuMs: number;
  counts: Record<string, number>;
  /** Required labels never produced. */
  missing: string[];
  /** fast-check's report of the (shrunk) failing input, when one failed. */
  failure?: string;
}

export async function fuzz<I>(target: FuzzTarget<I>, opts: FuzzOptions): Promise<FuzzResult> {
  const counts: Record<string, number> = {};
  let inputs = 0;
  let lastBeat = performance.now();
  const every = opts.progressEvery ?? 1_000;
  /** A heartbeat every `every` inputs, and at least once a second (shrinking, a loaded machine), so the watchdog sees life. */
  const beat = (now: number, counted: boolean): void => {
    if ((counted && inputs % every === 0) || now - lastBeat > 1_000) {
      lastBeat = now;
      opts.onProgress?.(inputs);
    }
  };
  const once = async (input: I): Promise<{ labels: string[]; took: number }> => {
    const t0 = performance.now();
    const labels = await target.run(input);
    const took = performance.now() - t0;
    beat(t0 + took, false);
    return { labels, took };
  };
  const timed = async (input: I): Promise<void> => {
    let { labels, took } = await once(input);
    // A loaded machine can stall any input once; an input that is slow is slow every time, so only a
    // second run over the limit fails it (the wall-clock limit stays the one the issue sets).
    if (took > opts.perInputMs) ({ labels, took } = await once(input));
    if (took > opts.perInputMs) throw new Error(`input took ${took.toFixed(0)} ms twice, over the ${opts.perInputMs} ms per-input limit`);
    for (const l of labels) counts[l] = (counts[l] ?? 0) + 1;
    inputs++;
    beat(performance.now(), true);
  };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const details = await fc.check(fc.asyncProperty(target.arbitrary, timed), { seed: opts.seed, numRuns: opts.numRuns, timeout: opts.perInputMs * 4 });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const result: FuzzResult = {
    target: target.name,
    seed: opts.seed,
    inputs,
    ms: Math.round(ms),
    inputsPerSecond: Math.round(inputs / (ms / 1000)),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    counts,
    missing: target.required.filter((l) => !counts[l]),
  };
  if (details.failed) {
    const err = details.errorInstance;
    const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
    result.failure = `${fc.defaultReportMessage(details) ?? 'failed'}\nError: ${why}`;
  }
  return result;
}
