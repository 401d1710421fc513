/**
 * Which address a request came from, as the app reports it: X-Real-IP from
 * the stack's nginx, else the TCP peer, or the client a trusted proxy names.
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
  resolveClient,
  splitForwarded,
  splitForwardedFor,
} from "./client_ip.ts";
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
  const split = forwardedHeader === "forwarded"
    ? splitForwarded
    : splitForwardedFor;

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

  function fromNginx(c: RequestContext): string {
    const given = c.req.header("x-real-ip");
    const address = given === undefined ? undefined : normalize(given);
    if (address !== undefined) return address;
    logger.error("proxy sent no valid X-Real-IP", {
      request_id: requestIdOf(c),
      present: given !== undefined,
    });
    throw new HTTPException(400, {
      message: "The proxy did not supply a valid client address",
    });
  }

  return (c) => {
    if (behindStackNginx(c)) return fromNginx(c);
    const remote = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    const hostname = remote?.transport === "tcp" ? remote.hostname : undefined;
    if (trustedProxies.length === 0 && hostname !== undefined) {
      const address = normalize(hostname);
      if (address !== undefined) return address;
    }
    const peer = hostname === undefined ? undefined : parseAddress(hostname);
    if (!peer) throw new Error("Connection has no peer address");
    const header = c.req.header(forwardedHeader);
    const hops = header === undefined ? [] : split(header);
    return formatAddress(resolveClient(peer, hops, trustedProxies));
  };
}
