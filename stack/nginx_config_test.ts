import assert from "node:assert/strict";
import template from "../nginx/nginx.conf" with { type: "text" };
import { ALLOW, COMMON_HEADERS } from "../service/common_headers.ts";
import { loadStackConfig } from "../service/config.ts";
import { STATIC_FILES } from "../service/static_files.ts";
import { NGINX_ERRORS, renderNginxConfig } from "./nginx_config.ts";
import { runtimeLayout } from "./runtime_dir.ts";

const config = loadStackConfig(
  (name) => ({ RUNTIME_DIR: "/run/ipt", PORT: "8080" })[name],
  2,
);
const rendered = renderNginxConfig(config, { ipv6: false });

// The lines of the block that starts with `opening`.
function block(text: string, opening: string): string[] {
  const start = text.indexOf(opening + " {");
  assert.ok(start >= 0, `no ${opening}`);
  const end = text.indexOf("\n    }", start);
  return text.slice(start, end).split("\n").slice(1).map((l) => l.trim());
}

Deno.test("each static file has its own location, from static_files.ts", () => {
  for (const [path, file] of STATIC_FILES) {
    const lines = block(rendered, `location = ${path}`);
    assert.ok(lines.includes(`root ${runtimeLayout("/run/ipt").public};`));
    assert.ok(lines.includes(`default_type "${file.type}";`), path);
    const headers = { ...COMMON_HEADERS, "cache-control": file.cacheControl };
    for (const [name, value] of Object.entries(headers)) {
      const sets = lines.filter((l) => l.startsWith(`add_header ${name} `));
      assert.deepEqual(sets, [`add_header ${name} "${value}" always;`], name);
    }
    assert.ok(lines.includes('add_header x-request-id "$req_id" always;'));
  }
});

Deno.test("nginx's config spells no fact that has a source elsewhere", () => {
  for (const fact of [ALLOW, "max-age", "favicon", "robots", "/static/"]) {
    assert.ok(!template.includes(fact), fact);
  }
  for (const name of Object.keys(COMMON_HEADERS)) {
    assert.ok(!template.toLowerCase().includes(name), name);
  }
});

Deno.test("each error nginx raises is JSON with each common header once", () => {
  for (const [raised, [status, message]] of Object.entries(NGINX_ERRORS)) {
    assert.ok(
      rendered.includes(`error_page ${raised} =${status} /_errors/${status};`),
      raised,
    );
    const lines = block(rendered, `location = /_errors/${status}`);
    assert.ok(lines.includes("default_type application/json;"), raised);
    for (const [name, value] of Object.entries(COMMON_HEADERS)) {
      const sets = lines.filter((l) => l.startsWith(`add_header ${name} `));
      assert.deepEqual(sets, [`add_header ${name} "${value}" always;`], name);
    }
    const body = JSON.stringify({ error: message });
    assert.ok(lines.includes(`return ${status} '${body}\\n';`), raised);
  }
});
