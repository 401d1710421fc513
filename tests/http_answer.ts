/**
 * Raw HTTP/1.1 for the contract tests: any bytes out, the answer parsed with
 * every header line kept (to see a header sent twice).
 *
 * @module
 */

/** One answer as it came off the wire. */
export interface RawAnswer {
  status: number;
  /** Header lines in order, names lowercased. */
  headers: [string, string][];
  body: string;
  /** Every value of one header. */
  all(name: string): string[];
  /** The one value of a header, or undefined. */
  get(name: string): string | undefined;
}

/** Parses a complete HTTP/1.1 answer. */
export function parseAnswer(text: string): RawAnswer {
  const end = text.indexOf("\r\n\r\n");
  if (!text.startsWith("HTTP/1.1 ") || end < 0) {
    throw new Error(`Not an HTTP answer: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  const all = (name: string) =>
    headers.filter(([n]) => n === name).map(([, v]) => v);
  return {
    status: Number(statusLine.split(" ")[1]),
    headers,
    body: text.slice(end + 4),
    all,
    get: (name) => all(name)[0],
  };
}

/** Sends `bytes` on a fresh connection; resolves with all that came back. */
export async function exchange(
  port: number,
  bytes: Uint8Array,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(bytes).catch(() => {});
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(65536);
    const deadline = setTimeout(() => conn.close(), 10_000);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        chunks.push(buffer.slice(0, n));
      }
    } catch {
      // A reset after (or instead of) the answer: what came is the answer.
    } finally {
      clearTimeout(deadline);
    }
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) all.set(c, (at += c.length) - c.length);
    return new TextDecoder("latin1").decode(all);
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the deadline.
    }
  }
}
