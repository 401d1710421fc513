/**
 * The stack's entry: nginx on PORT (default 8080) in front of WORKERS Deno
 * workers on Unix sockets, supervised. `deno task stack` runs it, and so
 * does the container. The supervisor lives in `stack/`.
 *
 * @module
 */
import { main } from "./stack/supervisor.ts";

if (import.meta.main) await main();
