/**
 * The stack's output: every line the supervisor, nginx and the workers
 * write goes through one relay to the supervisor's stdout or stderr, as one
 * valid UTF-8 JSON object a line, and never blocks anyone.
 *
 * Writing is asynchronous and bounded: when the reader of stdout stalls
 * (`| sleep`) or is gone (`| head -n1`), lines are dropped and counted, and
 * the count is written once the reader is back. A child's line that is
 * plain JSON is passed through (a worker's gets its `worker` field); any
 * other line becomes one JSON line at level `error` (`warn` for Deno's
 * warnings), without terminal escapes, with the fields the relay was given.
 * nginx's error log is translated into JSON and held to a budget per second;
 * its access log is JSON, but for refused requests (429), which nginx logs
 * as `STATUS CLIENT` and the relay counts: one line per client per second.
 *
 * @module
 */
import { stripVTControlCharacters } from "node:util";
import { formatTimestamp } from "../service/timestamp.ts";
import { createLogger, type LogFields, type Logger } from "../service/log.ts";
import type { LogLevel } from "../service/config.ts";

/** Where the relay writes: `Deno.stdout` and `Deno.stderr` or a test's. */
export interface LogSink {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * What a child writes: `json` our JSON log lines (a worker), `nginx-access`
 * nginx's access log (JSON, and `STATUS CLIENT` for a refused request),
 * `nginx-error` nginx's plain-text error log.
 */
export type RelayKind = "json" | "nginx-access" | "nginx-error";

/** Settings of a relay; tests inject a clock. */
export interface RelayOptions {
  /** The time in milliseconds (default `Date.now`). */
  now?: () => number;
}

const encoder = new TextEncoder();
const NEWLINE = 0x0a;
// Bytes queued for one stream before lines are dropped: a stalled reader
// costs the supervisor at most this much memory.
const MAX_QUEUED_BYTES = 1 << 20;
// One read of a child's pipe, into a buffer each relay reuses: a fresh
// buffer per read was most of the supervisor's garbage under a log flood.
const READ_SIZE = 1 << 16;
// nginx error-log lines relayed per second; the rest are counted.
const NGINX_LINES_PER_SECOND = 20;
// Clients whose refused requests get a line of their own each second; the
// rest are counted together.
const REFUSED_CLIENTS_PER_SECOND = 100;

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

// One queue per stream: a ring of MAX_QUEUED_BYTES that what is pushed is
// copied into, written from one write at a time, off the event loop. A
// fixed ring, not a list of chunks: a flood of log lines allocates nothing.
class Queue {
  #ring = new Uint8Array(MAX_QUEUED_BYTES);
  #head = 0;
  #size = 0;
  #writing = false;
  #broken = false;
  #dropped = 0;
  #reported = 0;

  constructor(
    readonly sink: LogSink,
    readonly onDropsReported: (dropped: number) => Uint8Array,
  ) {}

  // Queues `parts` (whole lines) together, or drops them all.
  push(parts: Uint8Array[], lines = 1): void {
    let length = 0;
    for (const part of parts) length += part.length;
    // Once there is room again, the reader hears what it missed first.
    const note = this.#dropped > this.#reported
      ? this.onDropsReported(this.#dropped)
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

  async flush(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while ((this.#writing || this.#size > 0) && Date.now() < deadline) {
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

function allPlain(bytes: Uint8Array): boolean {
  let start = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(NEWLINE, start);
    if (!plainJsonLine(bytes, start, end)) return false;
    start = end + 1;
  }
  return true;
}

// Whether bytes[start, end) holds `pattern` (a few bytes).
function holds(
  bytes: Uint8Array,
  start: number,
  end: number,
  pattern: Uint8Array,
): boolean {
  outer: for (let i = start; i <= end - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) {
      if (bytes[i + j] !== pattern[j]) continue outer;
    }
    return true;
  }
  return false;
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
export function nginxErrorLine(
  text: string,
  now: Date = new Date(),
): Record<string, unknown> {
  const m = text.match(
    /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d) \[(\w+)\] \d+#\d+: (?:\*(\d+) )?(.*)$/s,
  );
  if (!m) {
    return {
      time: formatTimestamp(now),
      level: "error",
      msg: stripVTControlCharacters(text),
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

// A line a child wrote that is not JSON, as a log object: an error (a
// warning when Deno says `warning`), without terminal escapes.
function textLine(
  text: string,
  fields: LogFields,
  now: Date = new Date(),
): LogFields {
  const msg = stripVTControlCharacters(text).trimEnd();
  return {
    time: formatTimestamp(now),
    level: /^warning\b/i.test(msg) ? "warn" : "error",
    msg,
    ...fields,
  };
}

// A client's refused requests in the current second, by `STATUS CLIENT`.
const REFUSED_LINE = /^([1-5]\d\d) ([0-9A-Fa-f.:]{1,45})$/;

/** One relayed stream: its kind, destination and the fields it adds. */
interface Source {
  kind: RelayKind;
  to: "stdout" | "stderr";
  fields: LogFields;
  // `,"worker":3` and the like: spliced in before each plain JSON line's `}`.
  tail?: Uint8Array;
  // `"worker":`: a line that has it keeps its own.
  key?: Uint8Array;
  // Text lines not written yet: one entry (see LogRelay.#text).
  text?: string;
  timer?: ReturnType<typeof setTimeout>;
}

// How long the relay waits for more of a child's text before writing it.
const TEXT_MS = 100;
// A line that starts a message of its own rather than continuing one.
const NEW_MESSAGE = /^(error|warning)\b/i;
// Characters of text kept for one entry before it is written.
const MAX_TEXT = 16_384;

/** The relay: a logger for the supervisor and readers for its children. */
export class LogRelay {
  #out: Queue;
  #err: Queue;
  #now: () => number;
  #decoder = new TextDecoder();
  #second = 0;
  #budget = { used: 0, suppressed: 0 };
  #refused = new Map<string, number>();
  #refusedElsewhere = 0;
  // Streams being relayed, whose pending text flush() writes.
  #sources = new Set<Source>();

  /** A relay to these two sinks (`Deno.stdout`, `Deno.stderr`). */
  constructor(stdout: LogSink, stderr: LogSink, options: RelayOptions = {}) {
    this.#now = options.now ?? Date.now;
    const note = (stream: string) => (dropped: number) =>
      encoder.encode(
        safeJson({
          time: this.#time(),
          level: "warn",
          msg: "log lines dropped: the reader of the stack's output stalled",
          component: "stack",
          stream,
          dropped,
        }) + "\n",
      );
    this.#out = new Queue(stdout, note("stdout"));
    this.#err = new Queue(stderr, note("stderr"));
    // Ends each second's counts even when nginx falls silent.
    Deno.unrefTimer(setInterval(() => this.#tick(), 1000));
  }

  #time(): string {
    return formatTimestamp(new Date(this.#now()));
  }

  /** Queues one log object (warnings and errors on stderr). */
  write(entry: Record<string, unknown>): void {
    const level = entry.level;
    const queue = level === "warn" || level === "error" ? this.#err : this.#out;
    queue.push([encoder.encode(safeJson(entry) + "\n")]);
  }

  /** A {@linkcode Logger} that writes through the relay. */
  logger(level: LogLevel, base: LogFields = {}): Logger {
    return createLogger(level, base, (entry) => this.write(entry));
  }

  /**
   * Relays a child's output (a byte stream: its stdout or stderr) until it
   * ends. `fields` (e.g. `{ worker: 3 }`) go on each line the relay writes
   * for it, and on each of its JSON lines that lacks them; nginx's lines
   * are marked `component: "nginx"`.
   */
  async relay(
    stream: ReadableStream<Uint8Array>,
    kind: RelayKind,
    to: "stdout" | "stderr",
    fields: LogFields = {},
  ): Promise<void> {
    const source = this.#source(kind, to, fields);
    this.#sources.add(source);
    const reader = stream.getReader({ mode: "byob" });
    let buffer = new Uint8Array(READ_SIZE);
    // Bytes of a line not ended yet, at the start of the buffer.
    let held = 0;
    try {
      while (true) {
        const { value, done } = await reader.read(buffer.subarray(held));
        if (value) buffer = new Uint8Array(value.buffer);
        if (done || !value) break;
        const filled = held + value.length;
        let last = buffer.lastIndexOf(NEWLINE, filled - 1);
        // A line longer than the buffer is cut where the buffer ends.
        if (last === -1 && filled === buffer.length) last = filled - 1;
        if (last >= 0) {
          this.#chunk(withNewline(buffer.subarray(0, last + 1)), source);
          buffer.copyWithin(0, last + 1, filled);
        }
        held = filled - (last + 1);
      }
    } catch {
      // The child is gone.
    } finally {
      reader.releaseLock();
    }
    if (held > 0) this.#chunk(withNewline(buffer.subarray(0, held)), source);
    this.#endText(source);
    this.#sources.delete(source);
  }

  #source(kind: RelayKind, to: "stdout" | "stderr", fields: LogFields) {
    const source: Source = {
      kind,
      to,
      fields: kind === "json" ? fields : { component: "nginx", ...fields },
    };
    const names = Object.keys(fields);
    if (kind === "json" && names.length > 0) {
      source.tail = encoder.encode(`,${safeJson(fields).slice(1, -1)}`);
      source.key = encoder.encode(`${JSON.stringify(names[0])}:`);
    }
    return source;
  }

  // Complete lines, each ended by a newline.
  #chunk(bytes: Uint8Array, source: Source): void {
    if (source.kind === "nginx-error") return this.#nginxErrors(bytes);
    const queue = source.to === "stdout" ? this.#out : this.#err;
    // The hot path: a chunk of plain JSON lines, copied once, into the queue.
    if (!source.tail && allPlain(bytes)) {
      queue.push([bytes], countLines(bytes));
      return;
    }
    let parts: Uint8Array[] = [];
    let lines = 0;
    const pass = () => {
      if (parts.length > 0) queue.push(parts, lines);
      parts = [];
      lines = 0;
    };
    const ended = () => {
      if (source.text === undefined) return;
      pass();
      this.#endText(source);
    };
    for (let start = 0; start < bytes.length;) {
      const end = bytes.indexOf(NEWLINE, start);
      const line = bytes.subarray(start, end + 1);
      start = end + 1;
      if (plainJsonLine(line, 0, line.length - 1)) {
        ended();
        parts.push(...this.#withFields(line, source));
        lines++;
        continue;
      }
      const decoded = this.#decoder.decode(line.subarray(0, -1));
      if (decoded.trim() === "") continue;
      const refused = source.kind === "nginx-access" &&
        REFUSED_LINE.exec(decoded);
      const object = refused ? undefined : jsonObject(decoded);
      if (refused) this.#countRefused(refused[1], refused[2]);
      else if (object) {
        ended();
        pass();
        const entry = safeJson(this.#filled(object, source)) + "\n";
        queue.push([encoder.encode(entry)]);
      } else {
        pass();
        this.#text(source, decoded);
      }
    }
    pass();
  }

  // Deno writes an uncaught error's message, source line, caret and stack
  // in several writes: text lines that follow each other within TEXT_MS
  // are one entry, up to the next `error:` or `warning` line.
  #text(source: Source, text: string): void {
    clearTimeout(source.timer);
    const line = stripVTControlCharacters(text);
    if (
      source.text !== undefined &&
      (NEW_MESSAGE.test(line) || source.text.length > MAX_TEXT)
    ) {
      this.#endText(source);
    }
    source.text = source.text === undefined ? line : `${source.text}\n${line}`;
    source.timer = setTimeout(() => this.#endText(source), TEXT_MS);
  }

  #endText(source: Source): void {
    clearTimeout(source.timer);
    if (source.text === undefined) return;
    this.write(textLine(source.text, source.fields, new Date(this.#now())));
    source.text = undefined;
  }

  // A plain JSON line, with the source's fields spliced in before its `}`.
  #withFields(line: Uint8Array, source: Source): Uint8Array[] {
    const end = line.length - 1;
    if (!source.tail || holds(line, 0, end, source.key!)) return [line];
    const empty = end === 2;
    return [
      line.subarray(0, end - 1),
      empty ? source.tail.subarray(1) : source.tail,
      Uint8Array.of(0x7d, NEWLINE),
    ];
  }

  // A worker's JSON object with the fields it lacks.
  #filled(object: LogFields, source: Source): LogFields {
    if (source.kind !== "json") return object;
    for (const [name, field] of Object.entries(source.fields)) {
      if (!(name in object)) object[name] = field;
    }
    return object;
  }

  #nginxErrors(bytes: Uint8Array): void {
    for (let start = 0; start < bytes.length;) {
      const end = bytes.indexOf(NEWLINE, start);
      const text = this.#decoder.decode(bytes.subarray(start, end));
      start = end + 1;
      if (text.trim() === "" || this.#overBudget()) continue;
      this.write(nginxErrorLine(text, new Date(this.#now())));
    }
  }

  #overBudget(): boolean {
    this.#tick();
    const b = this.#budget;
    if (b.used >= NGINX_LINES_PER_SECOND) {
      b.suppressed++;
      return true;
    }
    b.used++;
    return false;
  }

  #countRefused(status: string, client: string): void {
    this.#tick();
    const key = `${status} ${client}`;
    const count = this.#refused.get(key);
    if (count !== undefined) this.#refused.set(key, count + 1);
    else if (this.#refused.size < REFUSED_CLIENTS_PER_SECOND) {
      this.#refused.set(key, 1);
    } else {
      this.#refusedElsewhere++;
    }
  }

  // Once a second: what the last second counted, then a fresh count.
  #tick(force = false): void {
    const second = Math.floor(this.#now() / 1000);
    if (second === this.#second && !force) return;
    this.#second = second;
    const b = this.#budget;
    if (b.suppressed > 0) {
      this.write({
        time: this.#time(),
        level: "warn",
        msg: "nginx log lines suppressed: more than the budget per second",
        component: "stack",
        suppressed: b.suppressed,
        per_second: NGINX_LINES_PER_SECOND,
      });
    }
    this.#budget = { used: 0, suppressed: 0 };
    this.#writeRefused();
  }

  #writeRefused(): void {
    for (const [key, count] of this.#refused) {
      const [status, client] = key.split(" ");
      this.write({
        time: this.#time(),
        level: "warn",
        msg: "requests refused",
        component: "nginx",
        client,
        status: Number(status),
        count,
      });
    }
    if (this.#refusedElsewhere > 0) {
      this.write({
        time: this.#time(),
        level: "warn",
        msg: "requests refused from more clients",
        component: "nginx",
        count: this.#refusedElsewhere,
        clients_with_own_line: REFUSED_CLIENTS_PER_SECOND,
      });
    }
    this.#refused.clear();
    this.#refusedElsewhere = 0;
  }

  /**
   * Writes what this second counted and any text a child has not ended
   * yet, then waits up to `ms` for queued lines to be written (before
   * exiting).
   */
  async flush(ms = 1000): Promise<void> {
    this.#tick(true);
    for (const source of this.#sources) this.#endText(source);
    await Promise.all([this.#out.flush(ms), this.#err.flush(ms)]);
  }
}

// `text` as a JSON object (one that is not plain ASCII), if it is one.
function jsonObject(text: string): LogFields | undefined {
  try {
    const value = JSON.parse(text);
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      return value;
    }
  } catch {
    // Not JSON.
  }
  return undefined;
}

// A complete line, or bytes cut where a read ended, with a newline.
function withNewline(bytes: Uint8Array): Uint8Array {
  if (bytes[bytes.length - 1] === NEWLINE) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = NEWLINE;
  return out;
}
