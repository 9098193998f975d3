/**
 * The EmitSink of one run: frames go to the shared {@link FrameWriter}, acks
 * come from the {@link AckInbox}, and the sink remembers what the outcome
 * depends on: the terminal event actually written, and the first write failure.
 */
import type { FileWriteAckFrame, RunErrorPayload, RunCompletePayload } from '../protocol/index.js';
import { SizeLimitError, type EmitSink, type OutboundFrame } from '../sdk/index.js';
import type { AckInbox } from './ack-inbox.js';
import type { FrameWriter } from './frame-writer.js';

export type WrittenTerminal = { type: 'run_error'; payload: RunErrorPayload } | { type: 'run_complete'; payload: RunCompletePayload };

export class RunSink implements EmitSink {
  readonly #writer: FrameWriter;
  readonly #acks: AckInbox;
  #terminal: WrittenTerminal | undefined;
  #failure: { cause: unknown } | undefined;

  constructor(writer: FrameWriter, acks: AckInbox) {
    this.#writer = writer;
    this.#acks = acks;
  }

  /** The terminal event, once its frame was written. */
  get terminal(): WrittenTerminal | undefined {
    return this.#terminal;
  }

  /** The first write failure (the output is broken), if any. */
  get failure(): { cause: unknown } | undefined {
    return this.#failure;
  }

  get inputFault(): Error | undefined {
    return this.#acks.fault;
  }

  async writeFrame(frame: OutboundFrame): Promise<void> {
    try {
      await this.#writer.write(frame);
    } catch (err) {
      if (!(err instanceof SizeLimitError)) this.#failure ??= { cause: err };
      throw err;
    }
    if (frame.type === 'run_error') this.#terminal ??= { type: 'run_error', payload: frame.payload };
    else if (frame.type === 'run_complete') this.#terminal ??= { type: 'run_complete', payload: frame.payload };
  }

  awaitFileWriteAck(writeId: number): Promise<FileWriteAckFrame> {
    return this.#acks.awaitAck(writeId);
  }
}
