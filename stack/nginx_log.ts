/**
 * nginx's two logs as the relay reads them: the error log translated and
 * held to a budget of lines a second, and the access log's refused
 * requests (`STATUS CLIENT`) counted per client a second. Each counter's
 * `end` closes a second with the lines that summarise it.
 *
 * @module
 */
import { stripVTControlCharacters } from "node:util";
import type { LogFields } from "../service/log.ts";
import type { LogLevel } from "../service/config.ts";
import { formatTimestamp } from "../service/timestamp.ts";

const LEVELS: Record<string, LogLevel> = {
  debug: "debug",
  info: "info",
  notice: "info",
  warn: "warn",
};

/**
 * One line of nginx's error log as a log object: `2026/01/02 03:04:05
 * [warn] 12#12: *3 message` gives its time, level and message; a line of
 * another form is an error, without terminal escapes.
 */
export function nginxErrorLine(text: string, now = new Date()): LogFields {
  const m = text.match(
    /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d) \[(\w+)\] \d+#\d+: (?:\*(\d+) )?(.*)$/s,
  );
  return {
    // nginx writes local time; the supervisor's clock is the same machine's.
    time: formatTimestamp(
      m ? new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`) : now,
    ),
    level: (m && LEVELS[m[5]]) ?? "error",
    msg: stripVTControlCharacters(m ? m[7] : text),
    component: "nginx",
    ...(m?.[6] ? { connection: Number(m[6]) } : {}),
  };
}

// nginx's error-log lines relayed a second, and clients a second whose
// refused requests get a line of their own.
const PER_SECOND = 20;
const CLIENTS = 100;

/** 20 lines relayed a second; the rest are counted and told once. */
export class LineBudget {
  #seen = 0;

  /** Whether one more line may be written this second. */
  take(): boolean {
    return ++this.#seen <= PER_SECOND;
  }

  /** Ends the second: a line for what was suppressed, if anything was. */
  end(): LogFields[] {
    const suppressed = Math.max(0, this.#seen - PER_SECOND);
    this.#seen = 0;
    return suppressed === 0 ? [] : [{
      level: "warn",
      msg: "nginx log lines suppressed: more than the budget per second",
      component: "stack",
      suppressed,
      per_second: PER_SECOND,
    }];
  }
}

// nginx's access-log line for a refused request (nginx.conf).
const REFUSED_LINE = /^([1-5]\d\d) ([0-9A-Fa-f.:]{1,45})$/;

/**
 * Refused requests by status and client: a line for each client a second,
 * the clients past 100 counted together.
 */
export class RefusedRequests {
  #counts = new Map<string, number>();
  #elsewhere = 0;

  /** Counts `line` if it is a refused request's: whether it was. */
  count(line: string): boolean {
    const m = REFUSED_LINE.exec(line);
    if (!m) return false;
    const key = `${m[1]} ${m[2]}`;
    const n = this.#counts.get(key);
    if (n !== undefined) this.#counts.set(key, n + 1);
    else if (this.#counts.size < CLIENTS) this.#counts.set(key, 1);
    else this.#elsewhere++;
    return true;
  }

  /** Ends the second: one line per client, one for the rest. */
  end(): LogFields[] {
    const lines: LogFields[] = [...this.#counts].map(([key, count]) => {
      const [status, client] = key.split(" ");
      return { ...warn("requests refused"), client, status: +status, count };
    });
    if (this.#elsewhere > 0) {
      lines.push({
        ...warn("requests refused from more clients"),
        count: this.#elsewhere,
        clients_with_own_line: CLIENTS,
      });
    }
    this.#counts.clear();
    this.#elsewhere = 0;
    return lines;
  }
}

const warn = (msg: string) => ({ level: "warn", msg, component: "nginx" });
