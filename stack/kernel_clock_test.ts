// The supervisor's clock readings: decoded, sent to each worker that reads,
// a change of state logged once, a reader that fails leaving the clock
// unknown; and the real kernel read the way `adjtimex -p` reads it.
import assert from "node:assert/strict";
import { createLogger, type LogFields } from "../service/log.ts";
import type { Timex } from "../service/clock.ts";
import { ClockPublisher, kernelReader, LIBC } from "./kernel_clock.ts";

const SYNCED: Timex = {
  state: 0,
  status: 0x2001,
  maxerror: 4000,
  esterror: 250,
  tai: 37,
};
const UNSYNCED: Timex = {
  state: 5,
  status: 0x40,
  maxerror: 16_000_000,
  esterror: 16_000_000,
  tai: 0,
};

function logs() {
  const lines: LogFields[] = [];
  return { lines, logger: createLogger("info", {}, (e) => lines.push(e)) };
}

// A worker's stdin: what was written to it, as lines.
function stdin(highWaterMark = 4) {
  const lines: string[] = [];
  const stream = new WritableStream<Uint8Array>({
    write(chunk) {
      lines.push(new TextDecoder().decode(chunk));
    },
  }, { highWaterMark });
  return { lines, stream };
}

Deno.test("each worker gets the reading on its stdin, and a change of state is one warn line", async () => {
  const { lines, logger } = logs();
  let reading: Timex | null = SYNCED;
  const publisher = new ClockPublisher(logger, () => () => reading, () => 1000);
  assert.equal(publisher.state.synchronized, true);
  assert.equal(publisher.state.max_error_ms, 4);
  const worker = stdin();
  publisher.add(worker.stream);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(worker.lines.map((l) => JSON.parse(l)), [
    { timex: SYNCED, at: 1000 },
  ]);
  reading = UNSYNCED;
  publisher.publish();
  publisher.publish();
  reading = null;
  publisher.publish();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
    ["warn", "clock unsynchronised"],
    ["warn", "clock state unknown"],
  ]);
  assert.deepEqual(JSON.parse(worker.lines.at(-1)!), { timex: null, at: 1000 });
  await worker.stream.close().catch(() => {});
});

Deno.test("a worker that does not read (its pipe full) is skipped, never queued for", async () => {
  const { logger } = logs();
  const publisher = new ClockPublisher(logger, () => () => SYNCED);
  let writes = 0;
  const stuck = new WritableStream<Uint8Array>({
    write: () => {
      writes++;
      return new Promise(() => {});
    },
  }, { highWaterMark: 1 });
  publisher.add(stuck);
  for (let i = 0; i < 100; i++) publisher.publish();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(writes, 1, "one write waits; nothing more is queued");
});

Deno.test("without FFI (or libc) the clock is unknown, said once, and nothing throws", () => {
  const { lines, logger } = logs();
  const publisher = new ClockPublisher(logger, () => {
    throw new Deno.errors.NotCapable('Requires ffi access to "libc.so.6"');
  });
  publisher.publish();
  assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
    ["warn", "cannot read the kernel's clock: /time answers clock null"],
  ]);
  const failing = new ClockPublisher(logger, () => () => null);
  assert.deepEqual(publisher.state, failing.state);
  assert.deepEqual(failing.state, {
    synchronized: null,
    max_error_ms: null,
    est_error_ms: null,
    leap: "unknown",
    tai_offset_s: null,
    source: null,
  });
});

Deno.test({
  name: "the kernel read agrees with adjtimex -p in the same second",
  ignore: !Deno.statSync(LIBC).isFile,
  fn: async () => {
    const ours = kernelReader()()!;
    const out = await new Deno.Command("adjtimex", { args: ["-p"] }).output()
      .catch(() => undefined);
    if (!out?.success) {
      if (Deno.env.get("CI")) throw new Error("adjtimex -p did not run");
      console.log("skipped the comparison: Debian's adjtimex is missing");
      return;
    }
    const text = new TextDecoder().decode(out.stdout);
    const field = (name: string) =>
      Number(text.match(new RegExp(`^\\s*${name}: (-?\\d+)`, "m"))![1]);
    assert.equal(ours.state, Number(text.match(/return value = (\d+)/)![1]));
    assert.equal(ours.status, field("status"));
    // The kernel adds 500 us a second while nothing sets it.
    assert.ok(Math.abs(ours.maxerror - field("maxerror")) <= 1000);
    assert.ok(Math.abs(ours.esterror - field("esterror")) <= 1000);
  },
});
