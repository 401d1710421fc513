/**
 * The stack's output: every line of the supervisor, nginx and the workers,
 * as one UTF-8 JSON object a line on the supervisor's stdout or stderr,
 * through queues that never block (service/log_queue.ts). nginx's JSON
 * lines pass untouched; a worker's get `component: "worker"` and its index
 * over what the line says; any other line, and each piece of one longer
 * than a read, is a line at level `error` (`warn` for Deno's warnings)
 * without terminal escapes. nginx_log.ts summarises nginx's error log and
 * refused requests.
 *
 * @module
 */
import { stripVTControlCharacters } from "node:util";
import { formatTimestamp } from "../service/timestamp.ts";
import {
  createLogger,
  type LogFields,
  type Logger,
  queuedSink,
  safeJson,
} from "../service/log.ts";
import type { LogLevel } from "../service/config.ts";
import { type ByteSink, countLines } from "../service/log_queue.ts";
import { LineBudget, nginxErrorLine, RefusedRequests } from "./nginx_log.ts";

/**
 * What a child writes: `json` a worker's log lines, `nginx-access` nginx's
 * (JSON, or `STATUS CLIENT` for a refusal), `nginx-error` its error log.
 */
export type RelayKind = "json" | "nginx-access" | "nginx-error";

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
// One read of a child's pipe, into a buffer each relay reuses: a fresh
// buffer per read was most of the supervisor's garbage under a log flood.
const READ_SIZE = 1 << 16;

// Whether each line (each ended by a newline) is a JSON object of
// printable ASCII: what nginx's `escape=json` writes.
function plain(bytes: Uint8Array): boolean {
  for (let i = 0, start = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === NEWLINE) {
      if (bytes[start] !== 0x7b || bytes[i - 1] !== 0x7d) return false;
      start = i + 1;
    } else if (b < 0x20 || b > 0x7e) return false;
  }
  return true;
}

// One relayed stream, and its text not written yet (LogRelay.#text).
interface Source {
  kind: RelayKind;
  to: "stdout" | "stderr";
  fields: LogFields;
  text?: string;
  timer?: ReturnType<typeof setTimeout>;
}

// Text of one entry: what follows within TEXT_MS, up to MAX_TEXT
// characters, until a line that starts a message of its own.
const TEXT_MS = 100;
const MAX_TEXT = 16_384;
const NEW_MESSAGE = /^(error|warning)\b/i;

/** The relay: a logger for the supervisor and readers for its children. */
export class LogRelay {
  #queues: ReturnType<typeof queuedSink>;
  #now: () => number;
  #decoder = new TextDecoder();
  #second = 0;
  #budget = new LineBudget();
  #refused = new RefusedRequests();
  // Streams being relayed, whose pending text flush() writes.
  #sources = new Set<Source>();

  /** A relay to these sinks (`Deno.stdout`, `Deno.stderr`), on a clock. */
  constructor(stdout: ByteSink, stderr: ByteSink, now = Date.now) {
    this.#now = now;
    this.#queues = queuedSink({ component: "stack" }, stdout, stderr, now);
    // Ends each second's counts even when nginx falls silent.
    Deno.unrefTimer(setInterval(() => this.#tick(), 1000));
  }

  // Queues one log object, stamped now unless it has a time of its own
  // (warnings and errors on stderr).
  #write(entry: LogFields): void {
    const line = { time: formatTimestamp(new Date(this.#now())), ...entry };
    this.#queues.sink(line as typeof line & { level: LogLevel });
  }

  /** A {@linkcode Logger} that writes through the relay. */
  logger(level: LogLevel, base: LogFields = {}): Logger {
    return createLogger(level, base, this.#queues.sink);
  }

  /**
   * Relays a child's stdout or stderr until it ends, with `fields` (e.g.
   * `{ worker: 3 }`) and its component on each line, over the line's own.
   */
  async relay(
    stream: ReadableStream<Uint8Array>,
    kind: RelayKind,
    to: "stdout" | "stderr",
    fields: LogFields = {},
  ): Promise<void> {
    const source: Source = {
      kind,
      to,
      fields: { component: kind === "json" ? "worker" : "nginx", ...fields },
    };
    this.#sources.add(source);
    const reader = stream.getReader({ mode: "byob" });
    let buffer = new Uint8Array(READ_SIZE);
    // Bytes of a line not ended yet, at the start of the buffer; whether
    // they continue a line cut where the buffer ended.
    let held = 0;
    let cut = false;
    try {
      while (true) {
        const { value, done } = await reader.read(buffer.subarray(held));
        if (value) buffer = new Uint8Array(value.buffer);
        if (done || !value) break;
        const filled = held + value.length;
        let last = buffer.lastIndexOf(NEWLINE, filled - 1);
        // A line longer than the buffer is cut where the buffer ends.
        const cuts = last === -1 && filled === buffer.length;
        if (cuts) last = filled - 1;
        if (last >= 0) {
          const lines = withNewline(buffer.subarray(0, last + 1));
          this.#chunk(lines, source, cut || cuts);
          buffer.copyWithin(0, last + 1, filled);
        }
        held = filled - (last + 1);
        if (last >= 0) cut = cuts;
      }
    } catch {
      // The child is gone.
    } finally {
      reader.releaseLock();
    }
    if (held > 0) {
      this.#chunk(withNewline(buffer.subarray(0, held)), source, cut);
    }
    this.#endText(source);
    this.#sources.delete(source);
  }

  // Complete lines, each ended by a newline. `cut`: the first is a piece
  // of a line cut for its length, text whatever it looks like (a piece
  // could be made to look like a line of the child's own).
  #chunk(bytes: Uint8Array, source: Source, cut: boolean): void {
    this.#tick();
    const queue = this.#queues[source.to === "stdout" ? "out" : "err"];
    const raw = source.kind === "nginx-access";
    // The hot path: a chunk of nginx's JSON lines, copied once, into the queue.
    if (raw && !cut && plain(bytes)) {
      return queue.push([bytes], countLines(bytes));
    }
    for (let start = 0; start < bytes.length;) {
      const end = bytes.indexOf(NEWLINE, start);
      const line = bytes.subarray(start, end + 1);
      const whole = !cut || start > 0;
      start = end + 1;
      if (whole && raw && plain(line)) {
        this.#endText(source);
        queue.push([line]);
        continue;
      }
      const text = this.#decoder.decode(line.subarray(0, -1));
      if (text.trim() === "" || (whole && raw && this.#refused.count(text))) {
        continue;
      }
      if (source.kind === "nginx-error") {
        if (!this.#budget.take()) continue;
        this.#write(nginxErrorLine(text, new Date(this.#now())));
        continue;
      }
      const object = whole ? jsonObject(text) : undefined;
      if (!object) {
        this.#text(source, text);
        continue;
      }
      this.#endText(source);
      // A worker's JSON object, with the relay's fields over its own.
      const entry = raw ? object : { ...object, ...source.fields };
      queue.push([encoder.encode(safeJson(entry) + "\n")]);
    }
  }

  // Deno writes an uncaught error's message, source line, caret and stack
  // in several writes: text lines that follow each other within TEXT_MS
  // are one entry, up to the next `error:` or `warning` line.
  #text(source: Source, text: string): void {
    clearTimeout(source.timer);
    const line = stripVTControlCharacters(text);
    if (NEW_MESSAGE.test(line) || (source.text?.length ?? 0) > MAX_TEXT) {
      this.#endText(source);
    }
    source.text = source.text === undefined ? line : `${source.text}\n${line}`;
    source.timer = setTimeout(() => this.#endText(source), TEXT_MS);
  }

  #endText(source: Source): void {
    clearTimeout(source.timer);
    if (source.text === undefined) return;
    const msg = source.text.trimEnd();
    const level = /^warning\b/i.test(msg) ? "warn" : "error";
    this.#write({ level, msg, ...source.fields });
    source.text = undefined;
  }

  // Once a second: what the last second counted, then a fresh count.
  #tick(force = false): void {
    const second = Math.floor(this.#now() / 1000);
    if (second === this.#second && !force) return;
    this.#second = second;
    for (const line of [...this.#budget.end(), ...this.#refused.end()]) {
      this.#write(line);
    }
  }

  /**
   * Writes what this second counted and any text not ended yet, then waits
   * up to `ms` for what is queued to be written (before exiting).
   */
  async flush(ms = 1000): Promise<void> {
    this.#tick(true);
    for (const source of this.#sources) this.#endText(source);
    await this.#queues.flush(ms);
  }
}

// `text` as a JSON object (one that is not plain ASCII), if it is one.
function jsonObject(text: string): LogFields | undefined {
  try {
    const value = JSON.parse(text);
    if (typeof value === "object" && !Array.isArray(value)) return value;
  } catch {
    // Not JSON.
  }
}

// A complete line, or bytes cut where a read ended, with a newline.
function withNewline(bytes: Uint8Array): Uint8Array {
  if (bytes[bytes.length - 1] === NEWLINE) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = NEWLINE;
  return out;
}
