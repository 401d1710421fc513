/**
 * JSON-lines logging: one object a line, info and below on stdout, warnings
 * and errors on stderr.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./config.ts";
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

// Warnings and errors on stderr, the rest on stdout.
const consoleSink: LogSink = (entry) => {
  const line = JSON.stringify(entry);
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
