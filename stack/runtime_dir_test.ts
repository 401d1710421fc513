// The runtime directory as another user or a careless operator left it:
// the stack refuses it or replaces only what it makes, never following a
// link, never re-moding what it did not create.
import assert from "node:assert/strict";
import { ConfigError } from "../service/config.ts";
import { prepareRuntimeDir, runtimeLayout } from "./runtime_dir.ts";
import { needsRoot } from "../tests/test_util.ts";

const NOBODY = 65534;

// Rejects with a ConfigError naming RUNTIME_DIR whose message matches.
async function refused(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, /^Invalid RUNTIME_DIR "/);
    assert.match(err.message, pattern);
    return true;
  });
}

async function withBase(body: (base: string) => Promise<void>) {
  const base = await Deno.makeTempDir({ prefix: "ip-timestamp-rt-" });
  try {
    await body(base);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

async function modeOf(path: string): Promise<string> {
  const info = await Deno.lstat(path);
  return `${(info.mode! & 0o7777).toString(8)} ${info.uid}`;
}

Deno.test("/tmp, /etc and / are refused as runtime directories", async () => {
  await refused(prepareRuntimeDir("/tmp"), /writable by others|uid/);
  await refused(prepareRuntimeDir("/etc"), /holds|uid/);
  await refused(prepareRuntimeDir("/"), /holds|uid/);
});

Deno.test({
  name: "a directory another user planted is refused and left as it was",
  ignore: !needsRoot("plant a directory of another user's"),
  fn: () =>
    withBase(async (base) => {
      const victim = `${base}/victim.conf`;
      await Deno.writeTextFile(victim, "keep me");
      const run = `${base}/run`;
      await Deno.mkdir(`${run}/public`, { recursive: true });
      await Deno.symlink(victim, `${run}/nginx.conf`);
      await Deno.chown(run, NOBODY, NOBODY);
      const planted = await modeOf(run);
      await refused(prepareRuntimeDir(run), /belongs to uid 65534/);
      assert.equal(await Deno.readTextFile(victim), "keep me");
      assert.equal(await modeOf(run), planted, "not re-moded or chowned");
    }),
});

Deno.test("a shared directory (like /tmp) or one of other things (like /etc) is refused, untouched", () =>
  withBase(async (base) => {
    const shared = `${base}/shared`;
    await Deno.mkdir(shared);
    await Deno.chmod(shared, 0o1777);
    await refused(prepareRuntimeDir(shared), /writable by others/);
    assert.equal(await modeOf(shared), `1777 ${Deno.uid()}`);
    assert.deepEqual([...Deno.readDirSync(shared)], []);
    const etc = `${base}/etc`;
    await Deno.mkdir(etc, { mode: 0o755 });
    await Deno.writeTextFile(`${etc}/passwd`, "x");
    await refused(prepareRuntimeDir(etc), /holds "passwd"/);
    assert.deepEqual([...Deno.readDirSync(etc)].map((e) => e.name), [
      "passwd",
    ]);
  }));

Deno.test("a new runtime directory is closed to other users, and discard removes it", () =>
  withBase(async (base) => {
    const run = `${base}/a/b/run`;
    const dir = await prepareRuntimeDir(run);
    const layout = runtimeLayout(run);
    for (const path of [run, layout.sockets, layout.nginx, layout.public]) {
      assert.equal(await modeOf(path), `700 ${Deno.uid()}`, path);
    }
    assert.equal(
      await modeOf(`${layout.public}/static/app.js`),
      `600 ${Deno.uid()}`,
    );
    await dir.discard();
    await assert.rejects(Deno.lstat(run), Deno.errors.NotFound);
  }));

Deno.test("a directory the stack cannot make is a setting to fix (exit 2), not a crash", () =>
  withBase(async (base) => {
    await Deno.writeTextFile(`${base}/file`, "");
    await refused(prepareRuntimeDir(`${base}/file/run`), /Not a directory/i);
  }));

Deno.test("in its own directory the stack replaces links, never follows them", () =>
  withBase(async (base) => {
    const run = `${base}/run`;
    await Deno.mkdir(run, { mode: 0o755 });
    const victim = `${base}/victim`;
    await Deno.writeTextFile(victim, "keep me");
    const layout = runtimeLayout(run);
    await Deno.symlink(victim, layout.nginxConf);
    const dir = await prepareRuntimeDir(run);
    // An existing directory of its own keeps its mode.
    assert.equal(await modeOf(run), `755 ${Deno.uid()}`);
    await dir.writeFile(layout.nginxConf, new TextEncoder().encode("x"));
    assert.equal(await Deno.readTextFile(victim), "keep me");
    assert.ok((await Deno.lstat(layout.nginxConf)).isFile);
    // discard removes what this start made, public/ among it; a link where
    // the stack makes a directory is refused, not entered.
    await dir.discard();
    await assert.rejects(Deno.lstat(layout.public), Deno.errors.NotFound);
    await Deno.symlink(base, layout.public);
    await refused(prepareRuntimeDir(run), /holds "public"/);
    assert.equal(await Deno.readTextFile(victim), "keep me");
    assert.deepEqual(
      [...Deno.readDirSync(base)].map((e) => e.name).sort(),
      ["run", "victim"],
    );
  }));
