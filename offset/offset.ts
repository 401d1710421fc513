/**
 * Checks this machine's clock against an ip-timestamp server over plain
 * HTTP(S), as the page does: eight `/time?t0=` exchanges; offset =
 * ((t1 − t0) + (t2 − t3)) / 2, true to ± half the delay plus the server's
 * own maximum error (its `clock.max_error_ms`); the tightest bound wins.
 * No static imports: it runs alone with only the server's host allowed.
 *
 * ```sh
 * deno task offset https://time.example.org
 * deno run --allow-net=time.example.org offset.ts https://time.example.org --json
 * ```
 *
 * Exit codes follow the monitoring-plugin convention (Nagios, Icinga):
 * 0 OK (|offset| within `--warn`), 1 WARNING (beyond it), 2 CRITICAL
 * (beyond `--crit`), 3 UNKNOWN (no good sample, a server that cannot vouch
 * for its clock, or bad arguments).
 *
 * @module
 */

/** The most of an answer read: a `/time` answer is under 500 bytes. */
export const MAX_ANSWER_BYTES = 4096;

/** Redirects followed within the server's origin. */
const MAX_REDIRECTS = 3;

/** What a `/time` answer says of the server's own clock (its `clock`). */
export interface ServerClock {
  /** Whether a time daemon disciplines it; null: the server cannot tell. */
  synchronized: boolean | null;
  /** The kernel's bound on its error, ms; null: unknown. */
  max_error_ms: number | null;
  /** NTP's leap indicator: `unknown` is NTP's "unsynchronised". */
  leap: "none" | "insert" | "delete" | "unknown";
}

/** One exchange's result, in milliseconds. */
export interface Sample {
  /** How far the server's clock is ahead of this one. */
  offset: number;
  /** The round trip without the server's own time. */
  delay: number;
  /** The server's clock state; absent from an older server or a peer. */
  clock?: ServerClock;
}

/** What the program measured and decided. */
export interface Report {
  /** `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`. */
  status: "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";
  /** The monitoring-plugin exit code of that status. */
  code: 0 | 1 | 2 | 3;
  /** Why the status is UNKNOWN. */
  reason?: string;
  /** The best sample's offset (server minus this clock), ms. */
  offset_ms?: number;
  /** The offset's error bound, ms: half the delay plus the server's max error (null: the server knows none). */
  uncertainty_ms?: number | null;
  /** Half the best sample's delay: the network's part of the bound, ms. */
  half_delay_ms?: number;
  /** The best sample's delay, ms. */
  delay_ms?: number;
  /** The server's `clock.synchronized` (absent: it says nothing). */
  server_synchronized?: boolean | null;
  /** The server's `clock.max_error_ms`: its part of the bound. */
  server_max_error_ms?: number | null;
  /** The server's `clock.leap`. */
  server_leap?: ServerClock["leap"];
  /** Good exchanges out of those tried. */
  samples: number;
  /** Why the others were no good: reason → count. */
  failures: Record<string, number>;
}

/** The program's settings. */
export interface Options {
  /** The server's origin, e.g. `https://time.example.org`. */
  url: string;
  /** Exchanges to make. */
  count: number;
  /** |offset| in ms beyond which the status is WARNING. */
  warn: number;
  /** |offset| (or the server's max error) in ms beyond which CRITICAL (UNKNOWN). */
  crit: number;
  /** Print JSON instead of a plugin line. */
  json: boolean;
  /** Per-request time limit, ms. */
  timeout: number;
}

/** What the arguments ask for: a check, the usage, the version, or an error. */
export type Invocation = Options | { help: true } | { version: true } | {
  error: string;
};

/** This machine's clock, ms since the epoch with sub-ms precision. */
export const localClock = (): number =>
  performance.timeOrigin + performance.now();

/** An answer that makes no good sample; its message is a fixed phrase. */
class BadSample extends Error {}

/**
 * One exchange with `/time?t0=`: a sample, or why the answer is none (a
 * fixed phrase, never the server's bytes).
 */
export async function exchange(
  url: string,
  timeout: number,
  clock: () => number = localClock,
): Promise<Sample | string> {
  const t0 = Math.round(clock() * 1000) / 1000;
  let body: unknown;
  try {
    const signal = AbortSignal.timeout(timeout);
    body = await fetchAnswer(new URL(`/time?t0=${t0}`, url), signal);
  } catch (error) {
    return failure(error);
  }
  return sample(body, t0, clock());
}

async function fetchAnswer(url: URL, signal: AbortSignal): Promise<unknown> {
  const res = await follow(url, signal);
  if (!res.ok) {
    await res.body?.cancel();
    throw new BadSample(`HTTP ${res.status}`);
  }
  const text = await readCapped(res);
  try {
    return JSON.parse(text);
  } catch {
    throw new BadSample("not JSON");
  }
}

// Another origin's clock is not the server's: only same-origin redirects
// are followed, their round trips counted in the delay.
async function follow(url: URL, signal: AbortSignal): Promise<Response> {
  for (let hops = 0;; hops++) {
    const res = await fetch(url, { signal, redirect: "manual" });
    const location = res.headers.get("location");
    if (res.status < 300 || res.status > 399 || location === null) return res;
    await res.body?.cancel();
    const next = URL.parse(location, url);
    if (next?.origin !== url.origin) {
      throw new BadSample("redirect to another origin");
    }
    if (hops === MAX_REDIRECTS) throw new BadSample("too many redirects");
    url = next;
  }
}

async function readCapped(res: Response): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  // Leaving the loop early cancels the body: an endless one is not read on.
  for await (const chunk of res.body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) throw new BadSample("too large");
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

const CAUSES: [RegExp, string][] = [
  [/connection refused/i, "connection refused"],
  [/dns error|lookup/i, "name not resolved"],
  [/certificate|tls|handshake/i, "TLS error"],
  [/reset|closed|eof/i, "connection closed"],
  [/port \d+ are blocked/i, "port blocked by fetch"],
];

function failure(error: unknown): string {
  if (error instanceof BadSample) return error.message;
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return "timeout";
  }
  if (error instanceof Deno.errors.NotCapable) return "host not allowed";
  const text = String(error instanceof Error ? error.cause ?? error : error);
  return CAUSES.find(([pattern]) => pattern.test(text))?.[1] ?? "network error";
}

const NO_ECHO = "not an echo of the request";
const fields = (v: unknown) =>
  (typeof v === "object" && v || {}) as Record<string, unknown>;
const isTime = (v: unknown): v is number =>
  typeof v === "number" && Number.isFinite(v);

function sample(body: unknown, t0: number, t3: number): Sample | string {
  const { t0: echoed, t1, t2, clock } = fields(body);
  if (echoed !== t0 || !isTime(t1) || !isTime(t2) || t2 < t1) return NO_ECHO;
  const delay = (t3 - t0) - (t2 - t1);
  if (delay < 0) return NO_ECHO;
  const offset = ((t1 - t0) + (t2 - t3)) / 2;
  if (clock === undefined) return { offset, delay };
  const state = serverClock(clock);
  return state ? { offset, delay, clock: state } : "bad clock state";
}

const LEAPS = ["none", "insert", "delete", "unknown"];

function serverClock(value: unknown): ServerClock | undefined {
  const { synchronized, max_error_ms: bound, leap } = fields(value);
  const known = bound === null || (isTime(bound) && bound >= 0);
  if (![true, false, null].includes(synchronized as boolean)) return;
  if (!known || !LEAPS.includes(leap as string)) return;
  return { synchronized, max_error_ms: bound, leap } as ServerClock;
}

/** Why a server's word on its clock is not enough; undefined if it is. */
function doubt(server: ServerClock | undefined, crit: number) {
  // An older server or a peer says nothing: the offset to its clock stands.
  if (server === undefined) return undefined;
  if (server.synchronized === false) return "not synchronised";
  // NTP has no third state: leap indicator 3 means "unknown (unsynchronised)",
  // and its clients ignore such a server.
  if (server.synchronized === null) return "synchronisation unknown";
  if (server.leap === "unknown") return "leap indicator unknown";
  const bound = server.max_error_ms;
  if (bound === null) return "no error bound";
  if (bound > crit) return `max error ${bound} ms beyond --crit ${crit} ms`;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** The status one sample earns, with its figures. */
function judge(best: Sample, options: Options) {
  const server = best.clock;
  const bound = server ? server.max_error_ms : 0;
  const figures = {
    offset_ms: round(best.offset),
    uncertainty_ms: bound === null ? null : round(best.delay / 2 + bound),
    half_delay_ms: round(best.delay / 2),
    delay_ms: round(best.delay),
    ...(server && {
      server_synchronized: server.synchronized,
      server_max_error_ms: server.max_error_ms,
      server_leap: server.leap,
    }),
  };
  const why = doubt(server, options.crit);
  if (why !== undefined) {
    const reason = `the server cannot vouch for its clock: ${why}`;
    return { status: "UNKNOWN", code: 3, reason, ...figures } as const;
  }
  const size = Math.abs(best.offset);
  const [status, code] = size > options.crit
    ? ["CRITICAL", 2] as const
    : size > options.warn
    ? ["WARNING", 1] as const
    : ["OK", 0] as const;
  return { status, code, ...figures };
}

/** The sample's error bound: half its delay plus the server's max error. */
const distance = (s: Sample) => s.delay / 2 + (s.clock?.max_error_ms ?? 0);

/** The best of `count` exchanges and the status it earns. */
export async function measure(
  options: Options,
  clock: () => number = localClock,
): Promise<Report> {
  let best: Sample | undefined;
  let good = 0;
  const failures: Record<string, number> = {};
  for (let i = 0; i < options.count; i++) {
    const result = await exchange(options.url, options.timeout, clock);
    if (typeof result === "string") {
      failures[result] = (failures[result] ?? 0) + 1;
      continue;
    }
    good++;
    if (best === undefined || distance(result) < distance(best)) best = result;
  }
  if (best === undefined) {
    const reason = `no good answer: ${Object.keys(failures).join(", ")}`;
    return { status: "UNKNOWN", code: 3, reason, samples: 0, failures };
  }
  return { ...judge(best, options), samples: good, failures };
}

/** The plugin line: status, text, and performance data in seconds. */
export function pluginLine(report: Report, options: Options): string {
  const { offset_ms: offset, delay_ms: delay } = report;
  if (offset === undefined || delay === undefined) {
    const why = Object.entries(report.failures)
      .map(([reason, n]) => `${reason} (${n}/${options.count})`).join(", ");
    return `OFFSET UNKNOWN - no good answer from ${options.url}: ${why}`;
  }
  const s = (ms: number) => (ms / 1000).toFixed(6);
  const server = report.server_max_error_ms;
  const doubt = report.reason ? `${report.reason}; ` : "";
  const side = offset >= 0 ? "ahead" : "behind";
  return `OFFSET ${report.status} - ${doubt}server ${side} by ` +
    `${Math.abs(offset)} ms ± ${report.uncertainty_ms ?? "unknown"} ms ` +
    `(delay ${delay} ms, ` +
    (typeof server === "number" ? `server max error ${server} ms, ` : "") +
    `${report.samples}/${options.count} good)` +
    ` | offset=${s(offset)}s;${s(options.warn)};${s(options.crit)}` +
    ` delay=${s(delay)}s`;
}

const USAGE =
  "usage: offset URL [--json] [--warn MS] [--crit MS] [--count N] [--timeout MS]";

const HELP = `${USAGE}
Checks this machine's clock against an ip-timestamp server's /time.
  --warn MS     |offset| beyond it: WARNING (default 100)
  --crit MS     |offset| beyond it: CRITICAL; the server's max error
                beyond it: UNKNOWN (default 1000)
  --count N     exchanges, 1 to 100 (default 8)
  --timeout MS  per exchange (default 2000)
  --json        one JSON object instead of the plugin line
  --help, --version
Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no good answer, a server
that cannot vouch for its clock, bad arguments).`;

const RANGES: Record<string, [number, number]> = {
  "--warn": [0, Infinity],
  "--crit": [0, Infinity],
  "--count": [1, 100],
  "--timeout": [1, 600_000],
};

/** Parses the arguments. */
export function parseArgs(args: string[]): Invocation {
  const options: Options = {
    url: "",
    count: 8,
    warn: 100,
    crit: 1000,
    json: false,
    timeout: 2000,
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split("=", 2);
    if (flag === "--help" || flag === "-h") return { help: true };
    if (flag === "--version") return { version: true };
    if (flag === "--json") options.json = true;
    else if (flag in RANGES) {
      const value = Number(inline ?? args[++i]);
      const [min, max] = RANGES[flag];
      if (
        !(value >= min && value <= max) || (flag === "--count" && value % 1)
      ) {
        return { error: `bad ${flag}: a number from ${min} to ${max}` };
      }
      (options as unknown as Record<string, number>)[flag.slice(2)] = value;
    } else if (!flag.startsWith("-") && options.url === "") {
      options.url = args[i];
    } else return { error: `unknown argument ${flag}` };
  }
  if (!/^https?:\/\/[^/]/.test(options.url) || !URL.canParse(options.url)) {
    return { error: "bad URL: http(s)://host[:port]" };
  }
  if (options.crit < options.warn) return { error: "bad --crit: below --warn" };
  return options;
}

/** deno.json's version; this file copied alone does not know it. */
async function version(): Promise<string> {
  try {
    const json = { with: { type: "json" } } as const;
    const { default: meta } = await import("../deno.json", json);
    if (meta.tasks?.offset) return meta.version;
  } catch {
    // Copied without its project.
  }
  return "unknown";
}

/** Runs the program: prints its answer, returns its exit code. */
export async function main(args: string[]): Promise<number> {
  const asked = parseArgs(args);
  if ("error" in asked) {
    console.error(`${asked.error}\n${USAGE}`);
    return 3;
  }
  if ("help" in asked) console.log(HELP);
  else if ("version" in asked) {
    console.log(`offset (ip-timestamp) ${await version()}`);
  } else {
    const report = await measure(asked);
    console.log(
      asked.json ? JSON.stringify(report) : pluginLine(report, asked),
    );
    return report.code;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
