/**
 * `deno task dev`: `main.ts` under `deno run --watch` with the flags given
 * as arguments (`deno task -q flags`). The watcher alone waits for a file
 * change when the program exits; here a start that fails before the
 * service first listens (a busy port, a bad setting: one error line, exit
 * 2) ends the task with exit code 2. Once it has listened, a failure waits
 * for the fix as usual.
 *
 * @module
 */
import { DEFAULTS } from "../service/config.ts";
/** The exit code of a start that failed (main.ts's, for a bad setting). */
export const START_FAILED = 2;

const watcher = new Deno.Command("deno", {
  args: ["run", "--watch", ...Deno.args, "main.ts"],
  stdin: "inherit",
  stdout: "piped",
  stderr: "piped",
}).spawn();

let listened = false;
let failed = false;
let stopping = false;
let drained = false;

function stop(signal: Deno.Signal): void {
  try {
    watcher.kill(signal);
  } catch {
    // Already gone.
  }
}

// Every line is passed on; the service's first "listening" line, or an
// error line before it, decides.
async function pump(
  from: ReadableStream<Uint8Array>,
  to: { writeSync(p: Uint8Array): number },
): Promise<void> {
  const encoder = new TextEncoder();
  let rest = "";
  for await (const chunk of from.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      to.writeSync(encoder.encode(line + "\n"));
      if (line.includes('"msg":"listening"')) listened = true;
      // The program has drained; the watcher would wait for a change.
      if (stopping && line.includes('"msg":"stopped"')) {
        drained = true;
        stop("SIGKILL");
      }
      if (!listened && !failed && line.includes('"level":"error"')) {
        failed = true;
        stop("SIGTERM");
      }
    }
  }
  if (rest) to.writeSync(encoder.encode(rest));
}

// The program runs inside the watcher's process and catches the signal to
// drain: then the watcher goes on unless stopped too.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    stopping = true;
    stop(signal);
    setTimeout(() => stop("SIGKILL"), (DEFAULTS.drainSeconds + 2) * 1000);
  });
}
const [status] = await Promise.all([
  watcher.status,
  pump(watcher.stdout, Deno.stdout),
  pump(watcher.stderr, Deno.stderr),
]);
Deno.exit(failed ? START_FAILED : drained ? 0 : status.code);
