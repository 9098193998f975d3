/**
 * The proxy of each run of an invocation (SPEC §11): selected at run start
 * (a standalone run, each `--retries` attempt, each run of a crawl), moved off
 * by the run's `rotate_proxy` events as they arrive — so the next run, even
 * one starting while this one goes on, gets another endpoint — and by a run
 * that fails through it, so a dead endpoint is not handed straight to the
 * retry. The endpoint goes to the run request only; what is recorded has no
 * password.
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { ProxyEndpoint } from '../protocol/index.js';
import type { RunOutcome } from '../storage/manifest.js';
import { recordSelection, type ProxyRequest, type ProxySelection, type ProxySelector, type RecordedProxySelection } from './selector.js';

/** One run's proxy. */
export interface RunProxy {
  /** With its password: for the run request only. */
  readonly endpoint: ProxyEndpoint;
  /** What the manifest and report record. */
  readonly record: RecordedProxySelection;
  /** Feed every event of the run: a `rotate_proxy` moves the pool off this endpoint at once. */
  onEvent(e: AnyEventEnvelope): void;
  /** Call once the run ended; a failed run moves the pool off the endpoint unless it rotated already. */
  finish(outcome: RunOutcome): Promise<void>;
}

/** What varies per run: the work item's dedup key and its job. */
export interface RunProxyInput {
  readonly jobKey: string;
  readonly job: unknown;
}

/** Outcomes that say nothing about the endpoint. */
const NEUTRAL: ReadonlySet<RunOutcome> = new Set<RunOutcome>(['success', 'interrupted']);

/** Selects each run's proxy from one pool, with the invocation's proxy flags. */
export class ProxyRouter {
  readonly #selector: ProxySelector;
  readonly #request: Omit<ProxyRequest, 'jobKey' | 'job'>;
  readonly #onError: (message: string) => void;

  /** @param onError where a failed mark is reported (a mark never fails a run). */
  constructor(selector: ProxySelector, request: Omit<ProxyRequest, 'jobKey' | 'job'>, onError: (message: string) => void) {
    this.#selector = selector;
    this.#request = request;
    this.#onError = onError;
  }

  get selector(): ProxySelector {
    return this.#selector;
  }

  /** Selects the proxy of a run about to start. @throws the store's error when the state cannot be written. */
  async start(input: RunProxyInput): Promise<RunProxy> {
    const selection = await this.#selector.select({ ...this.#request, jobKey: input.jobKey, job: input.job });
    return this.#handle(selection);
  }

  close(): Promise<void> {
    return this.#selector.store.close();
  }

  #handle(selection: ProxySelection): RunProxy {
    let marks: Promise<void> = Promise.resolve();
    let rotated = false;
    const mark = (): void => {
      marks = marks.then(() => this.#selector.mark(selection)).catch((err: unknown) => {
        this.#onError(`could not record a rotation off proxy ${selection.endpoint.host}:${selection.endpoint.port} of pool ${selection.pool}: ${(err as Error).message}`);
      });
    };
    return {
      endpoint: selection.endpoint,
      record: recordSelection(selection),
      onEvent: (e) => {
        if (e.type !== 'rotate_proxy') return;
        // One mark per run is enough: a second would only repeat the first.
        if (!rotated) mark();
        rotated = true;
      },
      finish: async (outcome) => {
        if (!rotated && !NEUTRAL.has(outcome)) mark();
        await marks;
      },
    };
  }
}
