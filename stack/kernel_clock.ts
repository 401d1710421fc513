/**
 * The kernel's clock state for the workers' `/time`: `adjtimex(2)` read
 * through FFI once a second, in the supervisor alone (`--allow-ffi` on libc
 * is as good as every permission, which it holds already: it may run
 * `deno`), sent to each worker's stdin (service/clock.ts), a pipe that
 * needs no permission.
 *
 * @module
 */
import {
  clockChange,
  type ClockState,
  decodeTimex,
  formatClockLine,
  type Timex,
  UNKNOWN_CLOCK,
} from "../service/clock.ts";
import type { Logger } from "../service/log.ts";

/** libc where Debian keeps it for this machine's architecture. */
export const LIBC = `/lib/${Deno.build.arch}-linux-gnu/libc.so.6`;

/** Reads the kernel's clock: a reading, or null when the call failed. */
export type ReadTimex = () => Timex | null;

/**
 * `adjtimex` through libc; throws when libc cannot be opened. `struct
 * timex` on 64-bit Linux is 208 bytes, laid out alike on amd64 and arm64.
 */
export function kernelReader(): ReadTimex {
  const { adjtimex } = Deno.dlopen(LIBC, {
    adjtimex: { parameters: ["buffer"], result: "i32" },
  }).symbols;
  const buffer = new Uint8Array(208);
  const view = new DataView(buffer.buffer);
  return () => {
    buffer.fill(0); // modes 0: read only
    const state = adjtimex(buffer);
    return state < 0 ? null : {
      state,
      status: view.getInt32(40, true),
      maxerror: Number(view.getBigInt64(24, true)),
      esterror: Number(view.getBigInt64(32, true)),
      tai: view.getInt32(160, true),
    };
  };
}

/**
 * Reads once a second, sends each reading to every worker added, and warns
 * once at each change of state (synchronised or not, a leap second armed).
 */
export class ClockPublisher {
  #writers = new Set<WritableStreamDefaultWriter<Uint8Array>>();
  #read: ReadTimex = () => null;
  #line!: Uint8Array;
  /** The state the last reading gave. */
  state!: ClockState;

  /**
   * A publisher that reads with what `open` gives (the kernel's adjtimex);
   * one that cannot open it says so once, and the clock is unknown.
   */
  constructor(
    readonly logger: Logger,
    open: () => ReadTimex = kernelReader,
    readonly now: () => number = Date.now,
  ) {
    try {
      this.#read = open();
    } catch (err) {
      logger.warn("cannot read the kernel's clock: /time answers clock null", {
        error: String(err),
      });
    }
    this.publish();
    Deno.unrefTimer(setInterval(() => this.publish(), 1000));
  }

  /** Reads now and sends the reading to every worker. */
  publish(): void {
    const timex = this.#read();
    const state = timex ? decodeTimex(timex) : UNKNOWN_CLOCK;
    const change = this.state && clockChange(this.state, state);
    if (change) this.logger.warn(change, { clock: state });
    this.state = state;
    this.#line = new TextEncoder().encode(formatClockLine(timex, this.now()));
    for (const writer of this.#writers) this.#send(writer);
  }

  // A worker that stopped reading (SIGSTOP) fills its pipe: skipped.
  #send(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    if ((writer.desiredSize ?? 0) <= 0) return;
    writer.write(this.#line).catch(() => this.#writers.delete(writer));
  }

  /** Sends each reading to `stdin` (a worker's) until it closes. */
  add(stdin: WritableStream<Uint8Array>): void {
    const writer = stdin.getWriter();
    this.#writers.add(writer);
    writer.closed.catch(() => {}).finally(() => this.#writers.delete(writer));
    this.#send(writer);
  }
}
