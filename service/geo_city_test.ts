// GEOIP_CITY_DB: an operator's MaxMind-format city database names the
// caller's zone (`deno task start`, its own permission flags), and a file
// that is missing or not a MaxMind DB stops the service with exit 2.
import assert from "node:assert/strict";
import { cityDbFixture } from "../testing/mmdb_fixture.ts";
import {
  denoTask,
  listening,
  onFreePort,
  withTempDir,
} from "../tests/test_util.ts";

Deno.test("with GEOIP_CITY_DB, /api/ip answers the city database's zone", async () => {
  await withTempDir(async (dir) => {
    const db = `${dir}/city.mmdb`;
    // 81.2.64.0/18 is GB in the country database: the city file says Paris.
    await Deno.writeFile(db, cityDbFixture("81.2.64.0", 18, "Europe/Paris"));
    await onFreePort(async (port) => {
      const service = await listening(denoTask("start", {
        HOST: "127.0.0.1",
        PORT: String(port),
        TRUSTED_PROXIES: "127.0.0.1",
        GEOIP_CITY_DB: db,
      }));
      try {
        const ask = async (client: string) =>
          await (await fetch(`http://127.0.0.1:${port}/api/ip`, {
            headers: { "x-forwarded-for": client },
          })).json();
        const paris = await ask("81.2.69.1");
        assert.equal(paris.timezone, "Europe/Paris");
        assert.equal(paris.timezone_basis, "city");
        // Outside the city file: the country's zone.
        const brazil = await ask("2001:1290::1");
        assert.equal(brazil.timezone_basis, "guess");
      } finally {
        service.child.kill("SIGTERM");
        await service.child.status;
        await service.drained;
      }
    });
  });
});

Deno.test("a GEOIP_CITY_DB that is missing or not a MaxMind DB: one line naming it, exit 2", async () => {
  await withTempDir(async (dir) => {
    const junk = `${dir}/junk.mmdb`;
    await Deno.writeTextFile(junk, "not a database");
    for (
      const [path, why] of [[junk, /not a MaxMind DB/], [
        `${dir}/none.mmdb`,
        /cannot read it/,
      ]] as const
    ) {
      const service = denoTask("start", {
        HOST: "127.0.0.1",
        PORT: "1",
        GEOIP_CITY_DB: path,
      });
      const { code } = await service.child.status;
      await service.drained;
      assert.equal(code, 2);
      const lines = [...service.stdout, ...service.stderr].filter((l) =>
        l.trim()
      );
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /Invalid GEOIP_CITY_DB/);
      assert.match(lines[0], why);
      assert.doesNotMatch(lines[0], /not a database/);
    }
  });
});
