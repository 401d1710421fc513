/**
 * wrk, run and read in one place: the benchmark and the stack's load
 * tests both drive servers with it and read its summary with
 * {@linkcode parseWrk}.
 *
 * @module
 */

/** What one wrk run reports. */
export interface WrkResult {
  /** Requests completed. */
  requests: number;
  /** Requests per second. */
  rps: number;
  /** Median latency in ms (NaN unless run with `--latency`). */
  p50: number;
  /** 99th percentile latency in ms (NaN unless run with `--latency`). */
  p99: number;
  /** Answers with a status outside 2xx and 3xx. */
  non2xx: number;
  /** Socket errors by kind. */
  errors: { connect: number; read: number; write: number; timeout: number };
}

/** How to run wrk. */
export interface WrkOptions {
  /** Open connections (`-c`). */
  connections: number;
  /** How long to run (`-d`). */
  seconds: number;
  /** Report latency percentiles (`--latency`). */
  latency?: boolean;
  /** A Lua script that makes each request (`-s`). */
  script?: string;
  /** Arguments for the script's `init` (after `--`). */
  scriptArgs?: string[];
}

/** wrk's latency text (`812.00us`, `2.85ms`, `1.02s`) in milliseconds. */
export function millis(text: string): number {
  const m = text.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  return Number(m[1]) *
    ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]];
}

/** Reads wrk's summary; a figure it does not print counts as 0. */
export function parseWrk(text: string): WrkResult {
  const num = (re: RegExp) => Number(text.match(re)?.[1] ?? 0);
  const socket = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const [connect, read, write, timeout] = socket
    ? socket.slice(1).map(Number)
    : [0, 0, 0, 0];
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: millis(text.match(/\s50%\s+(\S+)/)?.[1] ?? ""),
    p99: millis(text.match(/\s99%\s+(\S+)/)?.[1] ?? ""),
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    errors: { connect, read, write, timeout },
  };
}

/** Every failed request of a run: non-2xx answers and socket errors. */
export function failures(result: WrkResult): number {
  const { connect, read, write, timeout } = result.errors;
  return result.non2xx + connect + read + write + timeout;
}

/** Runs wrk (two threads, 5 s timeout) against `url` and reads its summary. */
export async function wrk(
  url: string,
  options: WrkOptions,
): Promise<WrkResult> {
  const out = await new Deno.Command("wrk", {
    args: [
      "-t2",
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      "--timeout",
      "5s",
      ...(options.latency ? ["--latency"] : []),
      ...(options.script ? ["-s", options.script] : []),
      url,
      ...(options.scriptArgs ? ["--", ...options.scriptArgs] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return parseWrk(new TextDecoder().decode(out.stdout));
}
