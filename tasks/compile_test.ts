// The compile task's check of DENORT_BIN: deno itself, another version or
// no runtime at all is refused with one line and exit 2, before compiling.
import assert from "node:assert/strict";
import { denortProblem } from "./compile.ts";
import { PROJECT_DIR, withTempDir } from "../tests/test_util.ts";

const VERSION = Deno.version.deno;

Deno.test("DENORT_BIN pointing at deno is refused with one line and exit 2", async () => {
  const output = `${PROJECT_DIR}dist/ip-timestamp`;
  const before = await Deno.stat(output).then((s) => s.mtime, () => null);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile"],
    cwd: PROJECT_DIR,
    env: { DENORT_BIN: Deno.execPath(), TARGET: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  assert.equal(out.code, 2);
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(lines[0], /^Invalid DENORT_BIN ".*": that is deno itself/);
  // Nothing written: no program where there was none, the old one kept.
  const after = await Deno.stat(output).then((s) => s.mtime, () => null);
  assert.deepEqual(after, before);
});

Deno.test("a DENORT_BIN of another Deno version, or not a runtime, is refused", () =>
  withTempDir(async (dir) => {
    const file = (name: string, text: string) => {
      Deno.writeTextFileSync(`${dir}/${name}`, `\0${text}\0`);
      return `${dir}/${name}`;
    };
    const [major, minor, patch] = VERSION.split(".").map(Number);
    const other = `${major}.${minor + 1}.${patch}`;
    assert.equal(
      await denortProblem(file("same", `x Deno/${VERSION} y`), VERSION),
      undefined,
    );
    assert.match(
      (await denortProblem(file("other", `Deno/${other}`), VERSION))!,
      /not a denort of Deno/,
    );
    assert.match(
      (await denortProblem(file("later", `Deno/${VERSION}0`), VERSION))!,
      /not a denort of Deno/,
    );
    assert.match((await denortProblem("/bin/sh", VERSION))!, /not a denort/);
    assert.match((await denortProblem(dir, VERSION))!, /not a file/);
    assert.match((await denortProblem(`${dir}/no`, VERSION))!, /no such file/);
  }));

Deno.test("a compile that fails (denort cannot be downloaded) leaves no empty dist/", async () => {
  const dist = `${PROJECT_DIR}dist`;
  const had = await Deno.stat(dist).then(() => true, () => false);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "compile"],
    cwd: PROJECT_DIR,
    // A proxy that refuses: the download fails, online or not.
    env: {
      DENORT_BIN: "",
      TARGET: "",
      HTTPS_PROXY: "http://127.0.0.1:9",
      HTTP_PROXY: "http://127.0.0.1:9",
    },
    stdout: "null",
    stderr: "null",
  }).output();
  assert.notEqual(out.code, 0);
  if (!had) {
    await assert.rejects(Deno.stat(dist), Deno.errors.NotFound);
  }
});
