// service/tzdb.json is the pinned moment-timezone data, stripped: it
// cannot drift from the package deno.json pins.
import assert from "node:assert/strict";
import tzdb from "./tzdb.json" with { type: "json" };
import { strippedTzdb } from "./tzdb_update.ts";

Deno.test("tzdb.json is moment-timezone's packed data without transition times", () => {
  assert.deepEqual(
    tzdb,
    strippedTzdb(),
    "run: deno run -A service/tzdb_update.ts",
  );
});
