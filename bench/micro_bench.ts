// `deno bench`: the per-request work, without sockets.
import { createApp } from "../service/app.ts";
import { formatTimestamp } from "../service/timestamp.ts";
import {
  parseAddress,
  parseRange,
  resolveClient,
  splitForwardedFor,
} from "../service/client_ip.ts";
import { createLogger } from "../service/log.ts";

const info = {
  remoteAddr: { transport: "unix", path: "" },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;
const app = createApp({
  trustedProxies: [],
  forwardedHeader: "x-forwarded-for",
  logger: createLogger("error"),
  version: "bench",
});
const trusted = ["10.0.0.0/8", "fd00::/8"].map(parseRange);
const peer = parseAddress("10.0.0.1")!;

Deno.bench("formatTimestamp(new Date())", () => {
  formatTimestamp(new Date());
});

Deno.bench("X-Real-IP parse and normalize (IPv6)", () => {
  parseAddress("2001:db8::1");
});

Deno.bench("resolveClient over a 4-hop X-Forwarded-For", () => {
  resolveClient(
    peer,
    splitForwardedFor("203.0.113.9, 10.1.1.1, 10.2.2.2, 10.3.3.3"),
    trusted,
  );
});

Deno.bench("GET / through app.request (Unix-socket mode)", async () => {
  const res = await app.request("/", {
    headers: { "x-real-ip": "203.0.113.9" },
  }, info);
  await res.arrayBuffer();
});
