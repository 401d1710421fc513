/**
 * Checks this machine's clock against an ip-timestamp server over plain
 * HTTP(S), as the page does: eight `/time?t0=` exchanges, the one with the
 * least delay wins; offset = ((t1 − t0) + (t2 − t3)) / 2, ± half its delay.
 * No imports: it runs alone with only the server's host allowed.
 *
 * ```sh
 * deno task offset https://time.example.org
 * deno run --allow-net=time.example.org offset.ts https://time.example.org --json
 * ```
 *
 * Exit codes follow the monitoring-plugin convention (Nagios, Icinga):
 * 0 OK (|offset| within `--warn`), 1 WARNING (beyond it), 2 CRITICAL
 * (beyond `--crit`), 3 UNKNOWN (no good sample, or bad arguments).
 *
 * @module
 */

/** One exchange's result, in milliseconds. */
export interface Sample {
  /** How far the server's clock is ahead of this one. */
  offset: number;
  /** The round trip without the server's own time. */
  delay: number;
}

/** What the program measured and decided. */
export interface Report {
  /** `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`. */
  status: "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";
  /** The monitoring-plugin exit code of that status. */
  code: 0 | 1 | 2 | 3;
  /** The best sample's offset (server minus this clock), ms. */
  offset_ms?: number;
  /** Half the best sample's delay: the offset is exact to ± this, ms. */
  uncertainty_ms?: number;
  /** The best sample's delay, ms. */
  delay_ms?: number;
  /** Good exchanges out of those tried. */
  samples: number;
}

/** The program's settings. */
export interface Options {
  /** The server's origin, e.g. `https://time.example.org`. */
  url: string;
  /** Exchanges to make. */
  count: number;
  /** |offset| in ms beyond which the status is WARNING. */
  warn: number;
  /** |offset| in ms beyond which the status is CRITICAL. */
  crit: number;
  /** Print JSON instead of a plugin line. */
  json: boolean;
  /** Per-request time limit, ms. */
  timeout: number;
}

/** This machine's clock, ms since the epoch with sub-ms precision. */
export const localClock = (): number =>
  performance.timeOrigin + performance.now();

/**
 * One exchange with `/time?t0=`; undefined for an answer that is not a
 * sane echo of this request (error status, other t0, t2 before t1).
 */
export async function exchange(
  url: string,
  timeout: number,
  clock: () => number = localClock,
): Promise<Sample | undefined> {
  const t0 = Math.round(clock() * 1000) / 1000;
  let body: unknown;
  try {
    const res = await fetch(new URL(`/time?t0=${t0}`, url), {
      signal: AbortSignal.timeout(timeout),
    });
    body = res.ok ? await res.json() : await res.body?.cancel();
  } catch {
    return undefined;
  }
  const t3 = clock();
  const { t0: echoed, t1, t2 } = (body ?? {}) as Record<string, unknown>;
  if (echoed !== t0 || typeof t1 !== "number" || typeof t2 !== "number") {
    return undefined;
  }
  if (!Number.isFinite(t1) || !Number.isFinite(t2) || t2 < t1) return undefined;
  const delay = (t3 - t0) - (t2 - t1);
  if (delay < 0) return undefined;
  return { offset: ((t1 - t0) + (t2 - t3)) / 2, delay };
}

/** The best of `count` exchanges and the status it earns. */
export async function measure(
  options: Options,
  clock: () => number = localClock,
): Promise<Report> {
  let best: Sample | undefined;
  let good = 0;
  for (let i = 0; i < options.count; i++) {
    const sample = await exchange(options.url, options.timeout, clock);
    if (sample === undefined) continue;
    good++;
    if (best === undefined || sample.delay < best.delay) best = sample;
  }
  if (best === undefined) return { status: "UNKNOWN", code: 3, samples: 0 };
  const size = Math.abs(best.offset);
  const [status, code] = size > options.crit
    ? ["CRITICAL", 2] as const
    : size > options.warn
    ? ["WARNING", 1] as const
    : ["OK", 0] as const;
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    status,
    code,
    offset_ms: round(best.offset),
    uncertainty_ms: round(best.delay / 2),
    delay_ms: round(best.delay),
    samples: good,
  };
}

/** The plugin line: status, text, and performance data in seconds. */
export function pluginLine(report: Report, options: Options): string {
  if (report.offset_ms === undefined) {
    return `OFFSET UNKNOWN - no good answer from ${options.url}`;
  }
  const s = (ms: number) => (ms / 1000).toFixed(6);
  return `OFFSET ${report.status} - server ${
    report.offset_ms >= 0 ? "ahead" : "behind"
  } by ${Math.abs(report.offset_ms)} ms ± ${report.uncertainty_ms} ms ` +
    `(delay ${report.delay_ms} ms, ${report.samples}/${options.count} good)` +
    ` | offset=${s(report.offset_ms)}s;${s(options.warn)};${s(options.crit)}` +
    ` delay=${s(report.delay_ms!)}s`;
}

const USAGE =
  "usage: offset URL [--json] [--warn MS] [--crit MS] [--count N] [--timeout MS]";

/** Parses the arguments; a string is a usage error to print. */
export function parseArgs(args: string[]): Options | string {
  const options: Options = {
    url: "",
    count: 8,
    warn: 100,
    crit: 1000,
    json: false,
    timeout: 2000,
  };
  const numbers = ["--warn", "--crit", "--count", "--timeout"];
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    if (flag === "--json") options.json = true;
    else if (numbers.includes(flag)) {
      const value = Number(inline ?? args[++i]);
      if (!Number.isFinite(value) || value < 0) return `bad ${flag}\n${USAGE}`;
      (options as unknown as Record<string, number>)[flag.slice(2)] = value;
    } else if (!flag.startsWith("-") && options.url === "") options.url = flag;
    else return USAGE;
  }
  if (!/^https?:\/\/[^/]+/.test(options.url)) return USAGE;
  if (options.crit < options.warn || options.count < 1) return USAGE;
  return options;
}

if (import.meta.main) {
  const options = parseArgs(Deno.args);
  if (typeof options === "string") {
    console.error(options);
    Deno.exit(3);
  }
  const report = await measure(options);
  console.log(
    options.json ? JSON.stringify(report) : pluginLine(report, options),
  );
  Deno.exit(report.code);
}
