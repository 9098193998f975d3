/**
 * Live progress of a run on a terminal (SPEC §9): one status line on stderr,
 * redrawn in place, cleared before anything else is printed. Off when stderr
 * is not a TTY, so piped output stays machine-readable.
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';

const REDRAW_MS = 250;

export class RunProgress {
  readonly #write: (text: string) => void;
  readonly #label: string;
  readonly #started = Date.now();
  #events = 0;
  #items = 0;
  #checkpoints = 0;
  #shown = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(write: (text: string) => void, label: string) {
    this.#write = write;
    this.#label = label;
    this.#timer = setInterval(() => this.#draw(), REDRAW_MS);
    this.#timer.unref();
  }

  onEvent(e: AnyEventEnvelope): void {
    this.#events++;
    if (e.type === 'item') this.#items++;
    else if (e.type === 'checkpoint') this.#checkpoints++;
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
    const secs = (Date.now() - this.#started) / 1000;
    const rate = secs > 0 ? Math.round(this.#items / secs) : 0;
    this.#write(`\r\u001b[2K[quarry] ${this.#label}: ${this.#items} items, ${this.#checkpoints} checkpoints, ${this.#events} events, ${rate} items/s, ${secs.toFixed(0)}s`);
    this.#shown = true;
  }
}
