// The log queues with a fake sink: a stalled reader costs counted
// lines, a reader gone costs lines, never an exception.
import assert from "node:assert/strict";
import { type ByteSink, LogQueue } from "./log_queue.ts";

const encoder = new TextEncoder();

class Sink implements ByteSink {
  text = "";
  held?: PromiseWithResolvers<void>;
  closed = false;
  async write(bytes: Uint8Array): Promise<number> {
    await this.held?.promise;
    if (this.closed) throw new Deno.errors.BrokenPipe("closed");
    this.text += new TextDecoder().decode(bytes);
    return bytes.length;
  }
}

const note = (dropped: number) => encoder.encode(`dropped ${dropped}\n`);

Deno.test("a stalled reader costs dropped lines, counted once it is back", async () => {
  const sink = new Sink();
  sink.held = Promise.withResolvers();
  const queue = new LogQueue(sink, note);
  // 4 MiB of lines through a queue of 1 MiB.
  const line = encoder.encode(`${"x".repeat(1023)}\n`);
  for (let i = 0; i < 4096; i++) queue.push([line]);
  sink.held.resolve();
  await queue.flush(1000);
  queue.push([encoder.encode("after\n")]);
  await queue.flush(1000);
  const lines = sink.text.trimEnd().split("\n");
  const written = lines.filter((l) => l.startsWith("x")).length;
  assert.ok(written > 0 && written < 4096, String(written));
  assert.deepEqual(lines.slice(-2), [`dropped ${4096 - written}`, "after"]);
});

Deno.test("a reader gone (closed pipe) costs lines, never an exception", async () => {
  const sink = new Sink();
  sink.closed = true;
  const queue = new LogQueue(sink, note);
  queue.push([encoder.encode("one\n")]);
  await queue.flush(1000);
  queue.push([encoder.encode("two\n")]);
  await queue.flush(1000);
  assert.equal(sink.text, "");
});

Deno.test("lines dropped after the last push are told at flush, before exit", async () => {
  const sink = new Sink();
  sink.held = Promise.withResolvers();
  const queue = new LogQueue(sink, note);
  const line = encoder.encode(`${"x".repeat(1023)}\n`);
  for (let i = 0; i < 2048; i++) queue.push([line]);
  sink.held.resolve();
  await queue.flush(1000);
  const lines = sink.text.trimEnd().split("\n");
  const written = lines.filter((l) => l.startsWith("x")).length;
  assert.deepEqual(lines.at(-1), `dropped ${2048 - written}`);
});
