/**
 * A small, bounded slow-client flood on loopback, as slowhttptest makes:
 * connections that send headers that never end, bodies that never end, or
 * nothing at all, kept open (re-opened when the server closes them) until
 * the flood is stopped.
 *
 * @module
 */

/** How many connections of each kind to keep open. */
export interface FloodShape {
  slowHeaders: number;
  slowBodies: number;
  idle: number;
}

/** A running flood. */
export interface Flood {
  /** Connections open right now. */
  open(): number;
  /** Connections opened so far (re-opens included). */
  opened(): number;
  /** Stops the flood and closes every connection. */
  stop(): Promise<void>;
}

const encoder = new TextEncoder();
const START: Record<keyof FloodShape, string> = {
  slowHeaders: "GET /ip HTTP/1.1\r\nHost: flood\r\n",
  slowBodies:
    "POST /ip HTTP/1.1\r\nHost: flood\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
  idle: "",
};
// What each kind sends every DRIP_MS to keep the server waiting.
const DRIP: Record<keyof FloodShape, string> = {
  slowHeaders: "X-a: b\r\n",
  slowBodies: "a",
  idle: "",
};
const DRIP_MS = 1000;

/** Floods `hostname:port` from this process (127.0.0.1) until stopped. */
export function startFlood(
  port: number,
  shape: FloodShape,
  hostname = "127.0.0.1",
): Flood {
  let stopped = false;
  let opened = 0;
  const conns = new Set<Deno.TcpConn>();
  async function one(kind: keyof FloodShape): Promise<void> {
    while (!stopped) {
      let conn: Deno.TcpConn;
      try {
        conn = await Deno.connect({ hostname, port });
      } catch {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      opened++;
      conns.add(conn);
      try {
        if (START[kind]) await conn.write(encoder.encode(START[kind]));
        // Answers are read and ignored, as slowhttptest does: only the
        // server closing the connection ends it.
        const closed = (async () => {
          const buffer = new Uint8Array(4096);
          while ((await conn.read(buffer)) !== null) {
            // Ignored.
          }
        })().catch(() => {});
        while (!stopped) {
          const done = await Promise.race([
            closed.then(() => true),
            new Promise((r) => setTimeout(() => r(false), DRIP_MS)),
          ]);
          if (done) break;
          if (DRIP[kind]) await conn.write(encoder.encode(DRIP[kind]));
        }
      } catch {
        // Reset by the server: open another.
      }
      conns.delete(conn);
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
  const all: Promise<void>[] = [];
  for (const kind of Object.keys(shape) as (keyof FloodShape)[]) {
    for (let i = 0; i < shape[kind]; i++) all.push(one(kind));
  }
  return {
    open: () => conns.size,
    opened: () => opened,
    async stop() {
      stopped = true;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
      await Promise.all(all);
    },
  };
}
