/**
 * The stack's entry: nginx on PORT (default 8080) in front of WORKERS Deno
 * workers on Unix sockets, supervised. `deno task stack` runs it, and so
 * does the container. How a request goes: nginx (nginx/nginx.conf, rendered
 * by stack/nginx_config.ts) → a worker's socket → main.ts → service/app.ts.
 * The supervisor: stack/main.ts, its decisions in stack/supervision.ts.
 *
 * @module
 */
import { main } from "./stack/main.ts";

if (import.meta.main) await main();
