/**
 * The physical limit for a Deno worker: bare `Deno.serve`, no framework,
 * answering `GET /` with the same bytes and headers as the service.
 * On a Unix socket (SOCKET) it reads X-Real-IP and, like the service's
 * workers, leaves the common headers to nginx; on TCP (PORT) it reports the
 * peer and sets them itself.
 *
 * @module
 */
import { COMMON_HEADERS } from "../service/common_headers.ts";

const socket = Deno.env.get("SOCKET");

function handler(req: Request, info: Deno.ServeHandlerInfo): Response {
  const remote = info.remoteAddr;
  const timestamp = new Date().toISOString().slice(0, -1) + "+00:00";
  if (remote.transport === "unix") {
    const ip = req.headers.get("x-real-ip") ?? "";
    return new Response(JSON.stringify({ timestamp, ip }), {
      headers: { "content-type": "application/json", vary: "Accept" },
    });
  }
  const ip = (remote as Deno.NetAddr).hostname;
  return new Response(JSON.stringify({ timestamp, ip }), {
    headers: {
      ...COMMON_HEADERS,
      "x-request-id": req.headers.get("x-request-id") ?? crypto.randomUUID(),
      "content-type": "application/json",
      vary: "Accept",
    },
  });
}

const options = socket ? { path: socket, onListen() {} } : {
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT")),
  onListen() {},
};
const server = Deno.serve(options, handler);
if (socket) Deno.chmodSync(socket, 0o660);
console.log(JSON.stringify({ msg: "listening", address: server.addr }));
Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  if (socket) {
    try {
      Deno.removeSync(socket);
    } catch {
      // Already gone.
    }
  }
  Deno.exit(0);
});
