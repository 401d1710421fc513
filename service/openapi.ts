/**
 * The OpenAPI 3.1 description of every route, served at `/openapi.json`.
 *
 * @module
 */

const error = { $ref: "#/components/responses/Error" };
const headers = {
  "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" },
  "Cache-Control": { $ref: "#/components/headers/Cache-Control" },
};
const format = (values: string[]) => ({
  name: "format",
  in: "query",
  required: false,
  description: "Forces the answer's format, whatever `Accept` says.",
  schema: { type: "string", enum: values },
});

function operation(
  summary: string,
  description: string,
  content: Record<string, unknown>,
  parameters: unknown[] = [],
) {
  return {
    get: {
      summary,
      description,
      parameters,
      responses: {
        "200": { description: summary, headers, content },
        "400": error,
        "429": error,
        "500": error,
      },
    },
  };
}

/** Returns the document for this version of the service. */
export function openApiDocument(version: string): Record<string, unknown> {
  const timestamp = { $ref: "#/components/schemas/Timestamp" };
  const ip = { $ref: "#/components/schemas/Ip" };
  return {
    openapi: "3.1.0",
    info: {
      title: "ip-timestamp",
      version,
      description:
        "The current UTC time and the IP address the service sees a caller coming from.",
      license: { name: "MIT", identifier: "MIT" },
    },
    paths: {
      "/": operation(
        "Time and address",
        "JSON by default; a browser that prefers `text/html` gets a page.",
        {
          "application/json": {
            schema: {
              type: "object",
              required: ["timestamp", "ip"],
              additionalProperties: false,
              properties: { timestamp, ip },
            },
          },
          "text/html": { schema: { type: "string" } },
        },
        [format(["json", "html"])],
      ),
      "/ip": operation(
        "Address",
        "Plain text with a newline, or JSON when preferred.",
        {
          "text/plain": { schema: { type: "string" } },
          "application/json": {
            schema: {
              type: "object",
              required: ["ip"],
              additionalProperties: false,
              properties: { ip },
            },
          },
        },
        [format(["text", "json"])],
      ),
      "/timestamp": operation(
        "Time",
        "Plain text with a newline, or JSON with milliseconds since the epoch.",
        {
          "text/plain": { schema: { type: "string" } },
          "application/json": {
            schema: {
              type: "object",
              required: ["timestamp", "unix_ms"],
              additionalProperties: false,
              properties: { timestamp, unix_ms: { type: "integer" } },
            },
          },
        },
        [format(["text", "json"])],
      ),
      "/healthz": operation("Liveness", "Answers while the process serves.", {
        "application/json": {
          schema: {
            type: "object",
            required: ["status"],
            properties: { status: { const: "ok" } },
          },
        },
      }),
      "/openapi.json": operation("This document", "OpenAPI 3.1.", {
        "application/json": { schema: { type: "object" } },
      }),
    },
    components: {
      schemas: {
        Timestamp: {
          type: "string",
          description: "UTC, ISO 8601, three fractional digits, `+00:00`.",
          pattern:
            "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}\\+00:00$",
          examples: ["2025-12-12T12:34:56.789+00:00"],
        },
        Ip: {
          type: "string",
          description:
            "Dotted-quad IPv4 or RFC 5952 IPv6; IPv4-mapped IPv6 is shown as IPv4.",
          examples: ["203.0.113.7", "2001:db8::1"],
        },
        Error: {
          type: "object",
          required: ["error"],
          properties: { error: { type: "string" } },
        },
      },
      headers: {
        "X-Request-Id": {
          description: "The caller's id when it is sane, else a new one.",
          schema: { type: "string" },
        },
        "Cache-Control": {
          description:
            "Always `no-store`: each answer is per caller and per instant.",
          schema: { type: "string" },
        },
      },
      responses: {
        Error: {
          description: "An error, as JSON.",
          content: {
            "application/json": {
              schema: { $ref: "#/components/schemas/Error" },
            },
          },
        },
      },
    },
  };
}
