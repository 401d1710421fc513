/**
 * What the tests and the bench share to start servers: the project's
 * directory and a port that was free a moment ago.
 *
 * @module
 */

/** The project directory (where `deno.json` is). */
export const PROJECT_DIR: string = new URL("..", import.meta.url).pathname;

/** A TCP port that was free a moment ago (tests retry when it is taken). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Where a command is on PATH (or in /usr/sbin, /sbin), if anywhere. */
export function commandPath(name: string): string | undefined {
  for (
    const dir of (Deno.env.get("PATH") ?? "").split(":").concat([
      "/usr/sbin",
      "/sbin",
    ])
  ) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
