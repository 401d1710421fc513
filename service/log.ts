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

/** Creates a logger that writes JSON lines at or above `level`. */
export function createLogger(
  level: LogLevel,
  base: LogFields = {},
): Logger {
  const floor = LOG_LEVELS.indexOf(level);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= floor;
  const write = (l: LogLevel) => (msg: string, fields: LogFields = {}) => {
    if (!enabled(l)) return;
    const line = JSON.stringify({
      time: formatTimestamp(new Date()),
      level: l,
      msg,
      ...base,
      ...fields,
    });
    if (l === "warn" || l === "error") console.error(line);
    else console.log(line);
  };
  return {
    enabled,
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
  };
}
