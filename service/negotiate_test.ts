import assert from "node:assert/strict";
import { negotiate } from "./negotiate.ts";
import { ACCEPT_LIMIT } from "./request_rules.ts";

const PAGE = ["application/json", "text/html"];
const LINE = ["text/plain", "application/json"];

Deno.test("the most specific range sets a type's quality; q=0 refuses it", () => {
  for (
    const [accept, offered, chosen] of [
      [undefined, LINE, "text/plain"],
      ["*/*", LINE, "text/plain"],
      ["application/json", LINE, "application/json"],
      ["text/plain;q=0, */*", LINE, "application/json"],
      ["text/*;q=0, */*", LINE, "application/json"],
      ["text/*;q=0, text/plain", LINE, "text/plain"],
      ["application/json;q=0, */*", PAGE, "text/html"],
      ["*/*;q=0.1, application/json;q=0.5, text/html", PAGE, "text/html"],
      [
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        PAGE,
        "text/html",
      ],
      ["TEXT/HTML", PAGE, "text/html"],
      ["image/png", PAGE, "application/json"],
      ["application/json;q=0, text/html;q=0", PAGE, "application/json"],
      ["", PAGE, "application/json"],
    ] as const
  ) {
    assert.equal(negotiate(accept, offered), chosen, String(accept));
  }
});

Deno.test("an Accept over the limit is not read: the default, at once", () => {
  // It asks for the page, but it is not read: the default answers.
  const huge = "text/html;q=0.5, ".repeat(4000) + "text/html";
  assert.equal(negotiate(huge, PAGE), "application/json");
  const fits = "text/html;q=0.5, ".repeat(50) + "text/html";
  assert.ok(fits.length <= ACCEPT_LIMIT);
  assert.equal(negotiate(fits, PAGE), "text/html");
});
