/**
 * Live progress of a run on a terminal (SPEC §9): one status line on stderr,
 * redrawn in place, cleared before anything else is printed. Off when stderr
 * is not a TTY, so piped output stays machine-readable.
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';

const REDRAW_MS = 250;

/**
 * One status line on stderr, redrawn in place every 250 ms from `text()`,
 * cleared before other output: what every live progress display shares.
 */
export class LiveLine {
  readonly #write: (text: string) => void;
  readonly #text: () => string;
  #shown = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(write: (text: string) => void, text: () => string) {
    this.#write = write;
    this.#text = text;
    this.#timer = setInterval(() => this.#draw(), REDRAW_MS);
    this.#timer.unref();
  }

  /** Clears the status line so other output starts on a clean line. */
  clear(): void {
    if (this.#shown) this.#write('\r\u001b[2K');
    this.#shown = false;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.clear();
  }

  #draw(): void {
    this.#write(`\r\u001b[2K${this.#text()}`);
    this.#shown = true;
  }
}

export class RunProgress {
  readonly #label: string;
  readonly #started = Date.now();
  readonly #line: LiveLine;
  #events = 0;
  #items = 0;
  #checkpoints = 0;

  constructor(write: (text: string) => void, label: string) {
    this.#label = label;
    this.#line = new LiveLine(write, () => this.#text());
  }

  onEvent(e: AnyEventEnvelope): void {
    this.#events++;
    if (e.type === 'item') this.#items++;
    else if (e.type === 'checkpoint') this.#checkpoints++;
  }

  /** Clears the status line so other output starts on a clean line. */
  clear(): void {
    this.#line.clear();
  }

  stop(): void {
    this.#line.stop();
  }

  #text(): string {
    const secs = (Date.now() - this.#started) / 1000;
    const rate = secs > 0 ? Math.round(this.#items / secs) : 0;
    return `[quarry] ${this.#label}: ${this.#items} items, ${this.#checkpoints} checkpoints, ${this.#events} events, ${rate} items/s, ${secs.toFixed(0)}s`;
  }
}
