/**
 * Which address a request came from, as the app reports it: the peer (the
 * X-Real-IP the stack's nginx sets, else the connection's), or the client a
 * trusted proxy names. Behind nginx, X-Real-IP is the client nginx resolved
 * by the same rules (client_ip.ts, rendered by stack/client_key.ts) and no
 * hops are passed, so the answer is the address nginx logs and limits.
 *
 * @module
 */
import { HTTPException } from "hono/http-exception";
import type { ForwardedHeader } from "./config.ts";
import {
  type AddressRange,
  formatAddress,
  normalizeAddress,
  parseAddress,
  parseForwardedNode,
  parseHop,
  resolveClient,
  splitForwardedFor,
} from "./client_ip.ts";
import { splitForwarded } from "./forwarded.ts";
import {
  behindStackNginx,
  type RequestContext,
  requestIdOf,
} from "./answer.ts";
import type { Logger } from "./log.ts";

/** Whom to believe about addresses. */
export interface AddressOptions {
  /** Proxies whose forwarding headers are believed (TCP peers only). */
  trustedProxies: AddressRange[];
  /** The header those proxies write. */
  forwardedHeader: ForwardedHeader;
  /** Where a proxy that sent no valid address is reported. */
  logger: Logger;
}

/** Returns a function that tells a request's client address. */
export function clientAddressReader(
  { trustedProxies, forwardedHeader, logger }: AddressOptions,
): (c: RequestContext) => string {
  const [split, parseHopOf] = forwardedHeader === "forwarded"
    ? [splitForwarded, parseForwardedNode]
    : [splitForwardedFor, parseHop];

  // The same few addresses arrive again and again; parsing is the costly
  // part, so results of the pure parse are kept (bounded).
  const normalized = new Map<string, string | null>();
  function normalize(text: string): string | undefined {
    let hit = normalized.get(text);
    if (hit === undefined) {
      hit = normalizeAddress(text) ?? null;
      if (normalized.size >= 4096) normalized.clear();
      normalized.set(text, hit);
    }
    return hit ?? undefined;
  }

  // The peer, normalised once (cached); a bad X-Real-IP is nginx's fault.
  function peerOf(c: RequestContext): string {
    const socket = behindStackNginx(c);
    const remote = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    const text = socket
      ? c.req.header("x-real-ip")
      : remote?.transport === "tcp"
      ? remote.hostname
      : undefined;
    const address = text === undefined ? undefined : normalize(text);
    if (address !== undefined) return address;
    if (!socket) throw new Error("Connection has no peer address");
    logger.error("proxy sent no valid X-Real-IP", {
      request_id: requestIdOf(c),
      present: text !== undefined,
    });
    throw new HTTPException(400, {
      message: "The proxy did not supply a valid client address",
    });
  }

  // Hops are read only from a trusted peer that sent the header.
  return (c) => {
    const peer = peerOf(c);
    if (trustedProxies.length === 0) return peer;
    const header = c.req.header(forwardedHeader);
    if (header === undefined) return peer;
    return formatAddress(
      resolveClient(
        parseAddress(peer)!,
        split(header),
        trustedProxies,
        parseHopOf,
      ),
    );
  };
}
