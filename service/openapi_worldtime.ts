/**
 * The OpenAPI description of the worldtimeapi-compatible paths, merged
 * into `/openapi.json` by openapi.ts. Shapes as worldtimeapi documents
 * them (docs/worldtime.md).
 *
 * @module
 */
import { COUNTRY_DB } from "./geo.ts";
import { TZDB_VERSION } from "./tz_names.ts";

type Json = Record<string, unknown>;

/** The tag of these operations, for the document's global `tags`. */
export const WORLDTIME_TAG: { name: string; description: string } = {
  name: "worldtimeapi",
  description: "worldtimeapi.org-compatible: a zone's time, an address's zone",
};

const ref = (kind: string, name: string) => ({
  $ref: `#/components/${kind}/${name}`,
});
const HEADERS = {
  "X-Request-Id": ref("headers", "X-Request-Id"),
  "Cache-Control": ref("headers", "Cache-Control"),
};
const ERRORS: Json = {
  "400": ref("responses", "BadRequest"),
  "413": ref("responses", "ContentTooLarge"),
  "414": ref("responses", "UriTooLong"),
  "429": ref("responses", "TooManyRequests"),
  "431": ref("responses", "HeadersTooLarge"),
  "500": ref("responses", "InternalError"),
  "501": ref("responses", "NotImplemented"),
  "502": ref("responses", "BadGateway"),
  "503": ref("responses", "Unavailable"),
  "504": ref("responses", "GatewayTimeout"),
  "505": ref("responses", "VersionNotSupported"),
};

const utcInstant = {
  type: ["string", "null"],
  pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\+00:00$",
};
const micro = "\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{6}";

/** worldtimeapi's time object; `/api/ip` adds `timezone_basis`. */
export function worldTimeSchema(
  withBasis: boolean,
): Record<string, unknown> {
  const properties: Json = {
    abbreviation: {
      type: "string",
      description: `As the tz database (${TZDB_VERSION}) writes it.`,
      examples: ["EST", "BST", "+0545"],
    },
    client_ip: { type: "string", description: "The caller's address." },
    datetime: { type: "string", pattern: `^${micro}[+-]\\d{2}:\\d{2}$` },
    day_of_week: { type: "integer", minimum: 0, maximum: 6 },
    day_of_year: { type: "integer", minimum: 1, maximum: 366 },
    dst: { type: "boolean" },
    dst_from: { ...utcInstant, description: "Null outside DST." },
    dst_offset: { type: "integer", description: "Seconds." },
    dst_until: { ...utcInstant, description: "Null outside DST." },
    raw_offset: { type: "integer", description: "Standard offset, seconds." },
    timezone: { type: "string", description: "The canonical name." },
    unixtime: { type: "integer" },
    utc_datetime: { type: "string", pattern: `^${micro}\\+00:00$` },
    utc_offset: { type: "string", pattern: "^[+-]\\d{2}:\\d{2}$" },
    week_number: { type: "integer", minimum: 1, maximum: 53 },
  };
  if (withBasis) {
    properties.timezone_basis = {
      enum: ["country", "city", "guess"],
      description: "`country`: the country's only zone (or all its zones " +
        "agree now); `city`: the operator's city database; `guess`: the " +
        "most populous of the country's zones, or Etc/UTC when unknown.",
    };
  }
  return {
    type: "object",
    required: Object.keys(properties),
    additionalProperties: false,
    properties,
  };
}

const text = { "text/plain": { schema: { type: "string" } } };
const list = {
  "application/json": { schema: { type: "array", items: { type: "string" } } },
};
const unknown = {
  description: '`{"error":"unknown location"}`: no such zone or area.',
  headers: HEADERS,
  content: { "application/json": { schema: ref("schemas", "Error") } },
};

function param(name: string, description: string): Json {
  return {
    name,
    in: "path",
    required: true,
    description,
    schema: { type: "string" },
  };
}

function operations(
  id: string,
  summary: string,
  description: string,
  content: Json,
  parameters: Json[],
  notFound: boolean,
): Json {
  const responses: Json = {
    "200": { description: summary, headers: HEADERS, content },
    ...(notFound ? { "404": unknown } : {}),
    ...ERRORS,
  };
  const head: Json = {};
  for (const status of Object.keys(responses)) {
    head[status] = { description: "As GET, without a body.", headers: HEADERS };
  }
  const tags = [WORLDTIME_TAG.name];
  return {
    parameters,
    get: { operationId: id, tags, summary, description, responses },
    head: {
      operationId: `${id}Head`,
      tags,
      summary: `${summary} (headers only)`,
      description: "GET's status and headers, Content-Length too.",
      responses: head,
    },
    options: {
      operationId: `${id}Options`,
      tags,
      summary: "CORS preflight",
      description: "The methods allowed, for a day.",
      responses: { "204": ref("responses", "Preflight"), ...ERRORS },
    },
  };
}

const AREA = param("area", "An area (`Europe`), any case.");
const LOCATION = param("location", "A location (`London`), any case.");
const REGION = param("region", "A region (`Buenos_Aires`), any case.");
const ADDRESS = param("address", "An IPv4 or IPv6 address.");

function timezoneOps(suffix: string, txt: boolean): Json {
  const type = txt ? "Text" : "";
  const zone = txt ? text : {
    "application/json": { schema: worldTimeSchema(false) },
  };
  const zones = txt ? text : list;
  const time = (id: string, params: Json[]) =>
    operations(
      id + type,
      "A zone's current time",
      "worldtimeapi's time object for the zone (an alias gives the " +
        `canonical name)${txt ? ", as `key: value` lines" : ""}.`,
      zone,
      params,
      true,
    );
  return {
    [`/api/timezone${suffix}`]: operations(
      `listTimezones${type}`,
      "All zone names",
      `The tz database's canonical zones (${TZDB_VERSION}), sorted${
        txt ? ", one a line" : ""
      }.`,
      zones,
      [],
      false,
    ),
    [`/api/timezone/{area}${suffix}`]: operations(
      `listAreaTimezones${type}`,
      "An area's zone names, or a zone without an area",
      "The zones under the area (`Europe`); a name such as `UTC` is its time.",
      txt ? text : {
        "application/json": {
          schema: {
            oneOf: [list["application/json"].schema, worldTimeSchema(false)],
          },
        },
      },
      [AREA],
      true,
    ),
    [`/api/timezone/{area}/{location}${suffix}`]: time("getTimezone", [
      AREA,
      LOCATION,
    ]),
    [`/api/timezone/{area}/{location}/{region}${suffix}`]: time(
      "getRegionTimezone",
      [AREA, LOCATION, REGION],
    ),
  };
}

function ipOps(suffix: string, txt: boolean): Json {
  const type = txt ? "Text" : "";
  const content = txt ? text : {
    "application/json": { schema: worldTimeSchema(true) },
  };
  const basis = "The zone comes from the address's country in the embedded " +
    `database (${COUNTRY_DB.name} ${COUNTRY_DB.version}), or from the ` +
    "operator's city database (GEOIP_CITY_DB); `timezone_basis` says which " +
    "and marks a best guess.";
  return {
    [`/api/ip${suffix}`]: operations(
      `getCallerTime${type}`,
      "The caller's zone's current time",
      basis,
      content,
      [],
      false,
    ),
    [`/api/ip/{address}${suffix}`]: operations(
      `getAddressTime${type}`,
      "An address's zone's current time",
      `${basis} A malformed address is a 400.`,
      content,
      [ADDRESS],
      false,
    ),
  };
}

/** The worldtimeapi-compatible paths, for openapi.ts to merge. */
export function worldTimePaths(): Record<string, unknown> {
  return {
    ...timezoneOps("", false),
    ...timezoneOps(".txt", true),
    ...ipOps("", false),
    ...ipOps(".txt", true),
  };
}

/** The sentence `/openapi.json`'s description adds about the data used. */
export const DATA_SOURCES: string =
  `Time zones: the tz database ${TZDB_VERSION} (\`x-tz-release\`) for ` +
  "names, abbreviations, offsets (the runtime's, the same release) and " +
  `countries' zones. Countries: ${COUNTRY_DB.name} ${COUNTRY_DB.version}, ` +
  `${COUNTRY_DB.licence}.`;
