/**
 * `deno task compile`: `deno compile` with the arguments given (the flags
 * of `deno task -q flags compile`, then main.ts), after checking
 * `DENORT_BIN` when it is set. `deno compile` copies whatever binary
 * `DENORT_BIN` names into the executable: `deno` itself yields a 100 MB
 * program that opens a REPL with every permission instead of serving. So a
 * `DENORT_BIN` that is not a `denort` of this Deno's version is refused
 * with one line and exit 2.
 *
 * The check reads the file instead of running it: a `denort` for another
 * TARGET cannot run here.
 *
 * @module
 */

/** The exit code of a refused setting, as for the service's own. */
export const REFUSED = 2;

/** What a binary is, from strings compiled into it. */
export interface RuntimeMarks {
  /** It holds `deno compile` itself (which reads `DENORT_BIN`). */
  isDenoCli: boolean;
  /** It holds Deno's user agent for `version` (`Deno/2.9.6`). */
  hasVersion: boolean;
}

/** Scans a binary for the marks of {@linkcode RuntimeMarks}. */
export async function runtimeMarks(
  path: string,
  version: string,
): Promise<RuntimeMarks> {
  // The user agent both deno and denort send (deno_lib's version.rs); a
  // later version's "Deno/2.9.60" is told apart by what follows it.
  const versionMark = new RegExp(`Deno/${version.replaceAll(".", "\\.")}\\D`);
  const marks = { isDenoCli: false, hasVersion: false };
  // Latin-1 keeps one character per byte; chunks overlap by 64 bytes.
  const decoder = new TextDecoder("latin1");
  let tail = "";
  const file = await Deno.open(path);
  for await (const chunk of file.readable) {
    const text = tail + decoder.decode(chunk);
    marks.isDenoCli ||= text.includes("DENORT_BIN");
    marks.hasVersion ||= versionMark.test(text);
    tail = text.slice(-64);
  }
  return marks;
}

/** Why `path` is not a usable `denort` for `version`, or undefined. */
export async function denortProblem(
  path: string,
  version: string,
): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return "no such file";
  }
  if (!info.isFile) return "not a file";
  const marks = await runtimeMarks(path, version);
  if (marks.isDenoCli) {
    return "that is deno itself, whose executable would open a REPL instead of serving";
  }
  if (!marks.hasVersion) return `not a denort of Deno ${version}`;
  return undefined;
}

if (import.meta.main) {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    const problem = await denortProblem(denort, Deno.version.deno);
    if (problem) {
      console.error(
        `Invalid DENORT_BIN ${
          JSON.stringify(denort)
        }: ${problem}; use denort from denort-<target>.zip of Deno ${Deno.version.deno}'s release (README, Troubleshooting)`,
      );
      Deno.exit(REFUSED);
    }
  }
  const had = await Deno.stat("dist").then(() => true, () => false);
  const { code } = await new Deno.Command("deno", {
    args: ["compile", ...Deno.args],
  }).spawn().status;
  // A compile that failed leaves no empty dist/ behind (one it had is kept).
  if (code !== 0 && !had) await Deno.remove("dist").catch(() => {});
  Deno.exit(code);
}
