/**
 * Live progress of a crawl tree on a terminal (SPEC §10): one status line on
 * stderr — runs done/running/queued/failed, items, pages per second, elapsed —
 * redrawn in place and cleared before anything else is printed. Only used
 * when stderr is a TTY and not `--quiet`; piped, the tree prints one summary.
 */
import type { RunReport } from '../runtime/report.js';
import type { FrontierCounters } from '../scheduler/frontier.js';
import { LiveLine } from './progress.js';

export class TreeProgress {
  readonly #treeId: string;
  readonly #started = Date.now();
  readonly #line: LiveLine;
  #done = 0;
  #items = 0;
  #c: FrontierCounters | undefined;

  constructor(write: (text: string) => void, treeId: string) {
    this.#treeId = treeId;
    this.#line = new LiveLine(write, () => this.line());
  }

  runEnded(r: RunReport): void {
    this.#done++;
    this.#items += r.items;
  }

  /** Runs done and items so far, counted elsewhere (a queued tree's workers, §12). */
  totals(runs: number, items: number): void {
    this.#done = runs;
    this.#items = items;
  }

  counters(c: FrontierCounters): void {
    this.#c = c;
  }

  /** Clears the status line so other output starts on a clean line. */
  clear(): void {
    this.#line.clear();
  }

  stop(): void {
    this.#line.stop();
  }

  /** The status text (pure but for the clock). */
  line(): string {
    const secs = (Date.now() - this.#started) / 1000;
    const c = this.#c;
    const rate = secs > 0 ? (this.#done / secs).toFixed(1) : '0.0';
    return `[quarry] tree ${this.#treeId}: runs ${this.#done} done, ${c?.running ?? 0} running, ${c?.queued ?? 0} queued, ${c?.failed ?? 0} failed; ${this.#items} items; ${rate} pages/s; ${secs.toFixed(0)}s`;
  }
}
