/**
 * JSON-lines logging: one object a line, info and below on stdout, warnings
 * and errors on stderr.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./config.ts";
import { type ByteSink, LogQueue } from "./log_queue.ts";
import { formatTimestamp } from "./timestamp.ts";

/** Extra fields of one log line. */
export type LogFields = Record<string, unknown>;

/** Writes log lines at or above a level. */
export interface Logger {
  /** Whether lines of this level are written at all. */
  enabled(level: LogLevel): boolean;
  /** Detail for a developer; off unless LOG_LEVEL=debug. */
  debug(msg: string, fields?: LogFields): void;
  /** Normal operation: listening, stopping. */
  info(msg: string, fields?: LogFields): void;
  /** Something went wrong and was handled. */
  warn(msg: string, fields?: LogFields): void;
  /** Something failed: a request, a setting, a child process. */
  error(msg: string, fields?: LogFields): void;
}

/** Where a logger's entries go: one object a line. */
export type LogSink = (entry: LogFields & { level: LogLevel }) => void;

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

/**
 * A sink to stdout and stderr (warnings and errors) that never blocks: a
 * reader that stalls costs dropped lines, counted in a line with `base`'s
 * fields once it reads again. `out` and `err` also take bytes as they are
 * (the stack's relay); `flush` waits up to `ms` for what is queued.
 */
export function queuedSink(
  base: LogFields = {},
  stdout: ByteSink = Deno.stdout,
  stderr: ByteSink = Deno.stderr,
  now: () => number = Date.now,
): {
  sink: LogSink;
  out: LogQueue;
  err: LogQueue;
  flush(ms?: number): Promise<void>;
} {
  const encoder = new TextEncoder();
  const note = (stream: string) => (dropped: number) =>
    encoder.encode(
      safeJson({
        time: formatTimestamp(new Date(now())),
        level: "warn",
        msg: "log lines dropped: the reader of the output stalled",
        ...base,
        stream,
        dropped,
      }) + "\n",
    );
  const out = new LogQueue(stdout, note("stdout"));
  const err = new LogQueue(stderr, note("stderr"));
  return {
    out,
    err,
    sink: (entry) => {
      const queue = entry.level === "warn" || entry.level === "error"
        ? err
        : out;
      queue.push([encoder.encode(safeJson(entry) + "\n")]);
    },
    flush: async (ms = 1000) => {
      await Promise.all([out.flush(ms), err.flush(ms)]);
    },
  };
}

// Warnings and errors on stderr, the rest on stdout.
const consoleSink: LogSink = (entry) => {
  const line = safeJson(entry);
  if (entry.level === "warn" || entry.level === "error") console.error(line);
  else console.log(line);
};

/**
 * Creates a logger that writes JSON lines at or above `level`, each with
 * the `base` fields, to `sink` (the console unless given).
 */
export function createLogger(
  level: LogLevel,
  base: LogFields = {},
  sink: LogSink = consoleSink,
): Logger {
  const floor = LOG_LEVELS.indexOf(level);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= floor;
  const write = (l: LogLevel) => (msg: string, fields: LogFields = {}) => {
    if (!enabled(l)) return;
    sink({
      time: formatTimestamp(new Date()),
      level: l,
      msg,
      ...base,
      ...fields,
    });
  };
  return {
    enabled,
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
  };
}
