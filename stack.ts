/**
 * The stack (`deno task stack`, the container): nginx on PORT in front of
 * WORKERS Deno workers on Unix sockets, supervised. A request goes nginx
 * (nginx/nginx.conf) → a worker's socket → main.ts → service/app.ts. The
 * supervisor: stack/main.ts, its decisions in stack/supervision.ts.
 *
 * @module
 */
import { main } from "./stack/main.ts";

if (import.meta.main) await main();
