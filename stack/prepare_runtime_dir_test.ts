// The runtime directory as another user or a careless operator left it:
// the stack refuses it or replaces only what it makes, never following a
// link, never re-moding what it did not create.
import assert from "node:assert/strict";
import {
  prepareRuntimeDir,
  refusal,
  RuntimeDirError,
} from "./prepare_runtime_dir.ts";
import { runtimeLayout } from "./runtime_dir.ts";

const asRoot = Deno.uid() === 0;
// The group nginx's workers would have; any gid does for these checks.
const GID = 4242;
const ROOT = { uid: 0, gid: GID };
const NOBODY = 65534;

// Rejects with a RuntimeDirError whose message matches.
async function refused(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (err: Error) => {
    assert.ok(err instanceof RuntimeDirError, String(err));
    assert.match(err.message, pattern);
    return true;
  });
}

async function withBase(body: (base: string) => Promise<void>) {
  const base = await Deno.makeTempDir({ prefix: "ip-timestamp-rt-" });
  await Deno.chmod(base, 0o755);
  try {
    await body(base);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

async function modeOf(path: string): Promise<string> {
  const info = await Deno.lstat(path);
  return `${(info.mode! & 0o7777).toString(8)} ${info.uid}:${info.gid}`;
}

Deno.test("/tmp and /etc are refused as runtime directories", async () => {
  const owner = { uid: Deno.uid()!, gid: asRoot ? GID : undefined };
  assert.match((await refusal("/tmp", owner))!, /writable by others|uid/);
  assert.match((await refusal("/etc", owner))!, /holds|uid/);
  assert.match((await refusal("/", owner))!, /holds|uid/);
});

Deno.test({
  name: "a directory another user planted is refused and left as it was",
  ignore: !asRoot,
  fn: () =>
    withBase(async (base) => {
      const victim = `${base}/victim.conf`;
      await Deno.writeTextFile(victim, "keep me");
      const victimDir = `${base}/victim-dir`;
      await Deno.mkdir(victimDir, { mode: 0o755 });
      const before = [await modeOf(victim), await modeOf(victimDir)];
      const run = `${base}/run`;
      await Deno.mkdir(`${run}/public`, { recursive: true });
      await Deno.symlink(victim, `${run}/nginx.conf`);
      await Deno.symlink(victimDir, `${run}/public/static`);
      await Deno.chown(`${run}/public`, NOBODY, NOBODY);
      await Deno.chown(run, NOBODY, NOBODY);
      const planted = await modeOf(run);
      await refused(
        prepareRuntimeDir(run, ROOT),
        new RegExp(`belongs to uid ${NOBODY}`),
      );
      assert.equal(await Deno.readTextFile(victim), "keep me");
      assert.deepEqual([...Deno.readDirSync(victimDir)], []);
      assert.deepEqual(
        [await modeOf(victim), await modeOf(victimDir)],
        before,
      );
      assert.equal(await modeOf(run), planted, "not re-moded or chowned");
    }),
});

Deno.test({
  name: "a shared directory (like /tmp) is refused, its mode untouched",
  ignore: !asRoot,
  fn: () =>
    withBase(async (base) => {
      const shared = `${base}/shared`;
      await Deno.mkdir(shared);
      await Deno.chmod(shared, 0o1777);
      await refused(
        prepareRuntimeDir(shared, ROOT),
        new RegExp("writable by others"),
      );
      assert.equal(await modeOf(shared), "1777 0:0");
      assert.deepEqual([...Deno.readDirSync(shared)], []);
      // A directory of other things (like /etc) is not taken over either.
      const etc = `${base}/etc`;
      await Deno.mkdir(etc, { mode: 0o755 });
      await Deno.writeTextFile(`${etc}/passwd`, "x");
      await refused(prepareRuntimeDir(etc, ROOT), /holds "passwd"/);
      assert.deepEqual([...Deno.readDirSync(etc)].map((e) => e.name), [
        "passwd",
      ]);
    }),
});

Deno.test({
  name:
    "directories above it, and where links lead, must be closed to others and open to nginx",
  ignore: !asRoot,
  fn: () =>
    withBase(async (base) => {
      const open = `${base}/open`;
      await Deno.mkdir(open);
      await Deno.chmod(open, 0o777);
      await refused(
        prepareRuntimeDir(`${open}/run`, ROOT),
        new RegExp("not sticky"),
      );
      const shut = `${base}/shut`;
      await Deno.mkdir(shut, { mode: 0o700 });
      await refused(
        prepareRuntimeDir(`${shut}/run`, ROOT),
        new RegExp("cannot pass through"),
      );
      const theirs = `${base}/theirs`;
      await Deno.mkdir(theirs, { mode: 0o755 });
      await Deno.chown(theirs, NOBODY, NOBODY);
      await refused(
        prepareRuntimeDir(`${theirs}/run`, ROOT),
        new RegExp("not root"),
      );
      // A link of root's into a directory another user may change.
      const link = `${base}/link`;
      await Deno.symlink(`${theirs}`, link);
      await refused(prepareRuntimeDir(`${link}/run`, ROOT), /not root/);
      // Refused before anything was left in them.
      for (const dir of [open, shut, theirs]) {
        assert.deepEqual([...Deno.readDirSync(dir)], [], dir);
      }
    }),
});

Deno.test({
  name:
    "a new runtime directory: closed to all but nginx's group, undone by discard",
  ignore: !asRoot,
  fn: () =>
    withBase(async (base) => {
      const run = `${base}/run`;
      const dir = await prepareRuntimeDir(run, ROOT);
      const layout = runtimeLayout(run);
      assert.equal(await modeOf(run), `750 0:${GID}`);
      // Where the children (the stack's account) write: its group may too.
      assert.equal(await modeOf(layout.sockets), `2770 0:${GID}`);
      assert.equal(await modeOf(layout.nginxTemp), `2770 0:${GID}`);
      assert.equal(await modeOf(layout.public), `750 0:${GID}`);
      assert.equal(
        await modeOf(`${layout.public}/static/app.js`),
        `640 0:${GID}`,
      );
      await dir.discard();
      await assert.rejects(Deno.lstat(run), Deno.errors.NotFound);
      // Missing directories above it are made, open for nginx to pass.
      const deep = await prepareRuntimeDir(`${base}/a/b/run`, ROOT);
      assert.equal(await modeOf(`${base}/a/b`), "755 0:0");
      assert.equal(await modeOf(`${base}/a/b/run`), `750 0:${GID}`);
      await deep.discard();
    }),
});

Deno.test({
  name: "in its own directory the stack replaces links, never follows them",
  ignore: !asRoot,
  fn: () =>
    withBase(async (base) => {
      const run = `${base}/run`;
      await Deno.mkdir(run, { mode: 0o755 });
      const victim = `${base}/victim`;
      await Deno.writeTextFile(victim, "keep me");
      const layout = runtimeLayout(run);
      await Deno.symlink(victim, layout.nginxConf);
      await Deno.symlink(victim, layout.workerScript);
      const dir = await prepareRuntimeDir(run, ROOT);
      // An existing directory of its own keeps its mode and owner.
      assert.equal(await modeOf(run), "755 0:0");
      await dir.writeFile(layout.nginxConf, "events {}\n");
      await dir.clear(layout.workerScript);
      assert.equal(await Deno.readTextFile(victim), "keep me");
      assert.ok((await Deno.lstat(layout.nginxConf)).isFile);
      await assert.rejects(
        Deno.lstat(layout.workerScript),
        Deno.errors.NotFound,
      );
      // A link where the stack makes a directory is refused, not entered.
      // discard removes what this start made, public/ among it.
      await dir.discard();
      await assert.rejects(Deno.lstat(layout.public), Deno.errors.NotFound);
      await Deno.symlink(base, layout.public);
      await refused(
        prepareRuntimeDir(run, ROOT),
        /holds "public"/,
      );
      assert.equal(await Deno.readTextFile(victim), "keep me");
      assert.deepEqual(
        [...Deno.readDirSync(base)].map((e) => e.name).sort(),
        ["run", "victim"],
      );
    }),
});
