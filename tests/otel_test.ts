// OpenTelemetry the Deno way: with OTEL_DENO=true the service and every
// worker of the stack export a span per request, continuing the caller's
// W3C trace, to an OTLP/HTTP receiver (here one the test runs on loopback).
import assert from "node:assert/strict";
import {
  denoTask,
  listening,
  needs,
  onFreePort,
  withStack,
} from "./test_util.ts";

const ready = needs("nginx");

/** A loopback OTLP/HTTP receiver that keeps every trace export's bytes. */
function startReceiver() {
  const traces: Uint8Array[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const body = new Uint8Array(await req.arrayBuffer());
      if (new URL(req.url).pathname === "/v1/traces") traces.push(body);
      return new Response("{}", {
        headers: { "content-type": "application/json" },
      });
    },
  );
  const hex = () =>
    traces.map((b) =>
      Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")
    ).join(" ");
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    /** Waits until a span with this trace id (and parent) has arrived. */
    async waitForSpan(traceId: string, parentId: string, ms = 15_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        // OTLP protobuf carries ids as raw bytes: a span of this trace whose
        // parent is the caller's span holds both.
        const all = hex();
        if (all.includes(traceId) && all.includes(parentId)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `no span of trace ${traceId} in ${traces.length} exports`,
      );
    },
    stop: () => server.shutdown(),
  };
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function otelEnv(endpoint: string): Record<string, string> {
  return {
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_SERVICE_NAME: "ip-timestamp-test",
    // Export within a tenth of a second rather than Deno's default 1 s.
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
}

Deno.test({
  name:
    "through the stack, every worker exports a span carrying the caller's trace id, and nginx logs it",
  ignore: !ready,
  fn: async () => {
    const receiver = startReceiver();
    try {
      await withStack(otelEnv(receiver.endpoint), async (stack) => {
        // Four requests: nginx spreads them over both workers.
        const calls = Array.from(
          { length: 4 },
          () => ({ trace: randomHex(16), parent: randomHex(8) }),
        );
        for (const { trace, parent } of calls) {
          const res = await fetch(`${stack.url}/time`, {
            headers: { traceparent: `00-${trace}-${parent}-01` },
          });
          assert.equal(res.status, 200);
          await res.body?.cancel();
        }
        for (const { trace, parent } of calls) {
          await receiver.waitForSpan(trace, parent);
          const line = await stack.waitFor(new RegExp(`"trace_id":"${trace}"`));
          assert.equal(JSON.parse(line).path, "/time");
        }
        // A request without one is logged with an empty trace id.
        await (await fetch(`${stack.url}/healthz`)).body?.cancel();
        const line = await stack.waitFor(/"path":"\/healthz"/);
        assert.equal(JSON.parse(line).trace_id, "");
      });
    } finally {
      await receiver.stop();
    }
  },
});

Deno.test({
  name: "the service alone exports a span carrying the caller's trace id",
  fn: async () => {
    const receiver = startReceiver();
    try {
      const { port, service } = await onFreePort(async (port) => ({
        port,
        service: await listening(denoTask("start", {
          HOST: "127.0.0.1",
          PORT: String(port),
          ...otelEnv(receiver.endpoint),
        })),
      }));
      try {
        const trace = randomHex(16);
        const parent = randomHex(8);
        const res = await fetch(`http://127.0.0.1:${port}/ip`, {
          headers: { traceparent: `00-${trace}-${parent}-01` },
        });
        assert.equal(res.status, 200);
        await res.body?.cancel();
        await receiver.waitForSpan(trace, parent);
      } finally {
        service.child.kill("SIGTERM");
        await service.child.status;
        await service.drained;
      }
    } finally {
      await receiver.stop();
    }
  },
});
