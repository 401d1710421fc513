/**
 * Content negotiation by RFC 9110 §12.5.1: each offered media type takes the
 * quality of the most specific range in `Accept` that matches it, and a
 * quality of 0 means "not acceptable".
 *
 * @module
 */
import { parseAccept } from "hono/utils/accept";
import { ACCEPT_LIMIT } from "./request_rules.ts";

// 3 for type/subtype, 2 for type/*, 1 for */*, 0 for no match.
function specificity(range: string, offered: string): number {
  if (range === offered) return 3;
  if (range === "*/*") return 1;
  if (range.endsWith("/*") && offered.startsWith(range.slice(0, -1))) return 2;
  return 0;
}

/** The quality `accept` gives `offered` (a lowercase `type/subtype`). */
export function qualityOf(
  ranges: { type: string; q: number }[],
  offered: string,
): number {
  let best = 0;
  let quality = 0;
  for (const range of ranges) {
    const level = specificity(range.type.toLowerCase(), offered);
    if (level > best) {
      best = level;
      quality = range.q;
    }
  }
  return quality;
}

/**
 * Picks the offered media type `accept` likes best; ties go to the earlier
 * offer. With no header, or when nothing offered is acceptable, the answer
 * is `offered[0]`: the RFC lets a server disregard Accept rather than send a
 * 406, and a caller who asked for nothing we have still gets something.
 * An `Accept` longer than {@linkcode ACCEPT_LIMIT} is not read at all (both
 * doors refuse it before this; a bound on the work all the same).
 */
export function negotiate(
  accept: string | undefined,
  offered: readonly string[],
): string {
  if (!accept || accept.length > ACCEPT_LIMIT) return offered[0];
  const ranges = parseAccept(accept);
  let chosen = offered[0];
  let best = 0;
  for (const type of offered) {
    const q = qualityOf(ranges, type);
    if (q > best) {
      best = q;
      chosen = type;
    }
  }
  return chosen;
}
