// One tz release for all the service says about a zone: tzdb.json is the
// pinned moment-timezone data, and the runtime's ICU, which gives offsets,
// must carry the same release.
import assert from "node:assert/strict";
import moment from "moment-timezone";
import tzdb from "./tzdb.json" with { type: "json" };
import { openApiDocument } from "./openapi.ts";
import {
  dataZones,
  primaryNames,
  strippedTzdb,
  ZONE_TAB,
} from "./tzdb_update.ts";

const UPDATE =
  `the runtime's ICU carries another tz release than ${tzdb.version}: ` +
  "pin moment-timezone at its release in deno.json, then " +
  "`deno run -A service/tzdb_update.ts`";

Deno.test("tzdb.json is the pinned release without transition times, with each alias's primary name", () => {
  assert.deepEqual(
    tzdb,
    strippedTzdb(),
    "run: deno run -A service/tzdb_update.ts",
  );
});

Deno.test("the runtime knows every zone name shipped, and none other", () => {
  const names = dataZones();
  const known = (name: string) => {
    try {
      return new Intl.DateTimeFormat("en", { timeZone: name }) !== undefined;
    } catch {
      return false;
    }
  };
  assert.deepEqual(
    {
      unknownToRuntime: [...names.keys()].filter((name) => !known(name)),
      notShipped: Intl.supportedValuesOf("timeZone").filter((name) =>
        !names.has(name)
      ),
      zoneTabNotShipped: [...ZONE_TAB].filter((name) => !names.has(name)),
    },
    { unknownToRuntime: [], notShipped: [], zoneTabNotShipped: [] },
    UPDATE,
  );
});

// [ms since the epoch, minutes east of UTC from then on], for 1970–2036.
type Changes = [number, number][];
const FROM = Date.UTC(1970, 0, 1);
const UNTIL = Date.UTC(2037, 0, 1);

function runtimeChanges(name: string): Changes {
  let at = Temporal.Instant.fromEpochMilliseconds(FROM)
    .toZonedDateTimeISO(name);
  const changes: Changes = [[FROM, at.offsetNanoseconds / 60e9]];
  for (;;) {
    const next = at.getTimeZoneTransition("next");
    if (next === null || next.epochMilliseconds >= UNTIL) return changes;
    changes.push([next.epochMilliseconds, next.offsetNanoseconds / 60e9]);
    at = next;
  }
}

function shippedChanges(name: string): Changes {
  const zone = moment.tz.zone(name)!;
  const changes: Changes = [[FROM, -zone.utcOffset(FROM)]];
  zone.untils.forEach((until, i) => {
    const offset = -zone.offsets[i + 1];
    if (until > FROM && until < UNTIL && offset !== changes.at(-1)![1]) {
      changes.push([until, offset]);
    }
  });
  return changes;
}

Deno.test("the runtime's offsets are the shipped release's, for every zone name 1970–2036", () => {
  const differ = [...dataZones().keys()].filter((name) =>
    JSON.stringify(runtimeChanges(name)) !==
      JSON.stringify(shippedChanges(name))
  );
  assert.deepEqual(differ, [], UPDATE);
});

Deno.test("a zone that would have two primary names fails the update", () => {
  // A runtime that called every name one zone: zone.tab lists many.
  assert.throws(() => primaryNames(() => "Etc/Unknown"), /two primary names/);
});

Deno.test("/openapi.json names the tz release of every zone answer", () => {
  const { info } = openApiDocument("0.0.0") as { info: Record<string, string> };
  assert.equal(info["x-tz-release"], tzdb.version);
  assert.match(info.description, new RegExp(`tz database ${tzdb.version}\\b`));
});
