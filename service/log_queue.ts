/**
 * Output queues for log lines, the service's and the stack's relay's:
 * bounded, so that a stalled reader (`| sleep`) costs dropped lines,
 * counted and told once it is back, never a stalled process; and a reader
 * gone (`| head -n1`) costs lines, never an error.
 *
 * @module
 */

/** Where a queue writes: `Deno.stdout` and `Deno.stderr` or a test's. */
export interface ByteSink {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

const NEWLINE = 0x0a;
// Bytes queued for one stream before lines are dropped: a stalled reader
// costs the process at most this much memory.
const MAX_QUEUED_BYTES = 1 << 20;

/**
 * One stream's queue: a ring of 1 MiB that what is pushed is copied into,
 * written from one write at a time, off the event loop. A fixed ring, not a
 * list of chunks: a flood of log lines allocates nothing.
 */
export class LogQueue {
  #ring = new Uint8Array(MAX_QUEUED_BYTES);
  #head = 0;
  #size = 0;
  #writing = false;
  #broken = false;
  #dropped = 0;
  #reported = 0;

  /** A queue to `sink`; `note` is the line that tells of dropped lines. */
  constructor(
    readonly sink: ByteSink,
    readonly note: (dropped: number) => Uint8Array,
  ) {}

  /** Queues `parts` (whole lines) together, or drops them all. */
  push(parts: Uint8Array[], lines = 1): void {
    let length = 0;
    for (const part of parts) length += part.length;
    // Once there is room again, the reader hears what it missed first.
    const note = this.#dropped > this.#reported
      ? this.note(this.#dropped)
      : undefined;
    const room = MAX_QUEUED_BYTES - this.#size - (note?.length ?? 0);
    if (this.#broken || length > room) {
      this.#dropped += lines;
      return;
    }
    if (note) {
      this.#copyIn(note);
      this.#reported = this.#dropped;
    }
    for (const part of parts) this.#copyIn(part);
    if (!this.#writing) this.#drain();
  }

  #copyIn(bytes: Uint8Array): void {
    const tail = (this.#head + this.#size) % MAX_QUEUED_BYTES;
    const first = Math.min(bytes.length, MAX_QUEUED_BYTES - tail);
    this.#ring.set(bytes.subarray(0, first), tail);
    this.#ring.set(bytes.subarray(first), 0);
    this.#size += bytes.length;
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#size > 0) {
        const end = Math.min(this.#head + this.#size, MAX_QUEUED_BYTES);
        const n = await this.sink.write(this.#ring.subarray(this.#head, end));
        this.#head = (this.#head + n) % MAX_QUEUED_BYTES;
        this.#size -= n;
      }
    } catch {
      // The reader is gone (EPIPE, closed): drop from now on.
      this.#broken = true;
      const end = this.#head + this.#size;
      this.#dropped += countLines(this.#ring.subarray(this.#head, end)) +
        countLines(this.#ring.subarray(0, Math.max(0, end - MAX_QUEUED_BYTES)));
      this.#size = 0;
    } finally {
      this.#writing = false;
    }
  }

  /** Waits up to `ms` for what is queued (and the count of what was not) to be written. */
  async flush(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const drained = async () => {
      while ((this.#writing || this.#size > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await drained();
    // Lines dropped and not told yet are told before the process goes.
    if (this.#dropped > this.#reported) {
      this.push([], 0);
      await drained();
    }
  }
}

/** How many lines `bytes` holds (newlines). */
export function countLines(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === NEWLINE) n++;
  return n;
}
