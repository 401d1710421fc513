/**
 * The stack's output: every line the supervisor, nginx and the workers
 * write goes through one relay to the supervisor's stdout or stderr, as one
 * valid UTF-8 JSON object a line, and never blocks anyone.
 *
 * Writing is asynchronous and bounded: when the reader of stdout stalls
 * (`| sleep`) or is gone (`| head -n1`), lines are dropped and counted, and
 * the count is written once the reader is back. nginx's error log (plain
 * text) is translated into JSON; its access log is JSON already and is
 * passed through unless a line holds bytes that are not printable ASCII.
 * A flood of nginx error lines is cut to a budget per second and counted.
 *
 * @module
 */
import { formatTimestamp } from "../service/timestamp.ts";
import { createLogger, type LogFields, type Logger } from "../service/log.ts";
import type { LogLevel } from "../service/config.ts";

/** Where the relay writes: `Deno.stdout` and `Deno.stderr` or a test's. */
export interface LogSink {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** Lines dropped so far because a reader stalled or went away. */
export interface DropCounts {
  /** Lines meant for stdout. */
  stdout: number;
  /** Lines meant for stderr. */
  stderr: number;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
// Bytes queued for one stream before lines are dropped: a stalled reader
// costs the supervisor at most this much memory.
const MAX_QUEUED_BYTES = 1 << 20;
// nginx error-log lines relayed per second; the rest are counted.
const NGINX_LINES_PER_SECOND = 20;

// C1 controls (0x80-0x9f, e.g. the 8-bit CSI) and DEL are valid in JSON
// strings but act on terminals; the line separators break some readers.
const UNSAFE = /[\u007f-\u009f\u2028\u2029]/g;

/** `JSON.stringify` with terminal controls escaped: safe to print anywhere. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

// One queue per stream; writes run one at a time, off the event loop.
class Queue {
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #writing = false;
  #broken = false;
  dropped = 0;
  #reported = 0;

  constructor(
    readonly sink: LogSink,
    readonly onDropsReported: (dropped: number) => Uint8Array,
  ) {}

  push(bytes: Uint8Array, lines = 1): void {
    if (this.#broken || this.#bytes + bytes.length > MAX_QUEUED_BYTES) {
      this.dropped += lines;
      return;
    }
    this.#chunks.push(bytes);
    this.#bytes += bytes.length;
    if (!this.#writing) this.#drain();
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#chunks.length > 0) {
        if (this.dropped > this.#reported) {
          // The reader is back: say how much it missed, before what follows.
          const note = this.onDropsReported(this.dropped);
          this.#reported = this.dropped;
          this.#chunks.unshift(note);
          this.#bytes += note.length;
        }
        const chunk = this.#chunks.shift()!;
        this.#bytes -= chunk.length;
        let written = 0;
        while (written < chunk.length) {
          written += await this.sink.write(chunk.subarray(written));
        }
      }
    } catch {
      // The reader is gone (EPIPE, closed): drop from now on.
      this.#broken = true;
      for (const chunk of this.#chunks) this.dropped += countLines(chunk);
      this.#chunks = [];
      this.#bytes = 0;
    } finally {
      this.#writing = false;
    }
  }

  async flush(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (
      (this.#writing || this.#chunks.length > 0) && Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

function countLines(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) if (b === NEWLINE) n++;
  return n;
}

// A line is passed through untouched when it is a JSON object of
// printable ASCII (what nginx's `escape=json` access log writes).
function plainJsonLine(bytes: Uint8Array, start: number, end: number): boolean {
  if (bytes[start] !== 0x7b || bytes[end - 1] !== 0x7d) return false;
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e) return false;
  }
  return true;
}

const NGINX_LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  notice: "info",
  warn: "warn",
  error: "error",
  crit: "error",
  alert: "error",
  emerg: "error",
};

/**
 * One line of nginx's error log as a log object: `2026/01/02 03:04:05
 * [warn] 12#12: *3 message` gives its time, level and message.
 */
export function nginxErrorLine(text: string): Record<string, unknown> {
  const m = text.match(
    /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d) \[(\w+)\] \d+#\d+: (?:\*(\d+) )?(.*)$/s,
  );
  if (!m) {
    return {
      time: formatTimestamp(new Date()),
      level: "error",
      msg: text,
      component: "nginx",
    };
  }
  return {
    // nginx writes local time; the supervisor's clock is the same machine's.
    time: formatTimestamp(new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`)),
    level: NGINX_LEVELS[m[5]] ?? "error",
    msg: m[7],
    component: "nginx",
    ...(m[6] ? { connection: Number(m[6]) } : {}),
  };
}

/** The relay: a logger for the supervisor and readers for its children. */
export class LogRelay {
  #out: Queue;
  #err: Queue;
  #decoder = new TextDecoder();
  #budget = { second: 0, used: 0, suppressed: 0 };

  /** A relay to these two sinks (`Deno.stdout`, `Deno.stderr`). */
  constructor(stdout: LogSink, stderr: LogSink) {
    const note = (stream: string) => (dropped: number) =>
      encoder.encode(
        safeJson({
          time: formatTimestamp(new Date()),
          level: "warn",
          msg: "log lines dropped: the reader of the stack's output stalled",
          component: "stack",
          stream,
          dropped,
        }) + "\n",
      );
    this.#out = new Queue(stdout, note("stdout"));
    this.#err = new Queue(stderr, note("stderr"));
    // Reports what a flood suppressed even when nginx falls silent.
    Deno.unrefTimer(setInterval(() => this.#reportSuppressed(), 1000));
  }

  /** Lines dropped so far, per stream. */
  get dropped(): DropCounts {
    return { stdout: this.#out.dropped, stderr: this.#err.dropped };
  }

  /** Queues one log object (warnings and errors on stderr). */
  write(entry: Record<string, unknown>): void {
    const level = entry.level;
    const queue = level === "warn" || level === "error" ? this.#err : this.#out;
    queue.push(encoder.encode(safeJson(entry) + "\n"));
  }

  /** A {@linkcode Logger} that writes through the relay. */
  logger(level: LogLevel, base: LogFields = {}): Logger {
    return createLogger(level, base, (entry) => this.write(entry));
  }

  /**
   * Relays a child's output. `json` lines (the workers', nginx's access
   * log) pass through when already plain JSON and are re-encoded
   * otherwise; `nginx-error` lines are translated and held to a budget.
   */
  async relay(
    stream: ReadableStream<Uint8Array>,
    kind: "json" | "nginx-error",
    to: "stdout" | "stderr",
  ): Promise<void> {
    let rest = new Uint8Array(0);
    try {
      for await (const chunk of stream) {
        const bytes = rest.length ? concat(rest, chunk) : chunk;
        const last = bytes.lastIndexOf(NEWLINE);
        if (last === -1) {
          rest = bytes.slice();
          continue;
        }
        this.#lines(bytes.subarray(0, last + 1), kind, to);
        rest = bytes.slice(last + 1);
      }
    } catch {
      // The child is gone.
    }
    if (rest.length) {
      this.#lines(concat(rest, Uint8Array.of(NEWLINE)), kind, to);
    }
  }

  #lines(
    bytes: Uint8Array,
    kind: "json" | "nginx-error",
    to: "stdout" | "stderr",
  ): void {
    const queue = to === "stdout" ? this.#out : this.#err;
    if (kind === "json" && this.#allPlain(bytes)) {
      queue.push(bytes, countLines(bytes));
      return;
    }
    let start = 0;
    while (start < bytes.length) {
      const end = bytes.indexOf(NEWLINE, start);
      const text = this.#decoder.decode(bytes.subarray(start, end));
      start = end + 1;
      if (text.trim() === "") continue;
      if (kind === "nginx-error") {
        if (this.#overBudget()) continue;
        this.write(nginxErrorLine(text));
      } else {
        queue.push(encoder.encode(jsonLine(text) + "\n"));
      }
    }
  }

  #allPlain(bytes: Uint8Array): boolean {
    let start = 0;
    while (start < bytes.length) {
      const end = bytes.indexOf(NEWLINE, start);
      if (!plainJsonLine(bytes, start, end)) return false;
      start = end + 1;
    }
    return true;
  }

  #reportSuppressed(): void {
    const second = Math.floor(Date.now() / 1000);
    const b = this.#budget;
    if (second === b.second) return;
    if (b.suppressed > 0) {
      this.write({
        time: formatTimestamp(new Date()),
        level: "warn",
        msg: "nginx log lines suppressed: more than the budget per second",
        component: "stack",
        suppressed: b.suppressed,
        per_second: NGINX_LINES_PER_SECOND,
      });
    }
    b.second = second;
    b.used = 0;
    b.suppressed = 0;
  }

  #overBudget(): boolean {
    this.#reportSuppressed();
    const b = this.#budget;
    if (b.used >= NGINX_LINES_PER_SECOND) {
      b.suppressed++;
      return true;
    }
    b.used++;
    return false;
  }

  /** Waits up to `ms` for queued lines to be written (before exiting). */
  async flush(ms = 1000): Promise<void> {
    await Promise.all([this.#out.flush(ms), this.#err.flush(ms)]);
  }
}

// A line that should be JSON: re-encoded safely, or wrapped if it is not.
function jsonLine(text: string): string {
  try {
    const value = JSON.parse(text);
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return safeJson(value);
    }
  } catch {
    // Not JSON: wrapped below.
  }
  return safeJson({
    time: formatTimestamp(new Date()),
    level: "info",
    msg: text,
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
