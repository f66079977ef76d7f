/**
 * jsr.json serves Deno users the TypeScript sources: `deno publish --dry-run` checks the
 * package as JSR would (exports resolve, the module graph is all included, no slow types in
 * the public API) without publishing anything. Its version follows package.json's.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "../..");

test("jsr.json has package.json's version and license and names every package.json export", () => {
  const jsr = JSON.parse(readFileSync(join(REPO, "jsr.json"), "utf8")) as {
    version: string;
    license: string;
    exports: Record<string, string>;
  };
  const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
    version: string;
    license: string;
    exports: Record<string, unknown>;
  };
  expect(jsr.version).toBe(pkg.version);
  expect(jsr.license).toBe(pkg.license);
  expect(Object.keys(jsr.exports).sort()).toEqual(
    Object.keys(pkg.exports)
      .filter((k) => k !== "./package.json")
      .sort(),
  );
});

test("deno publish --dry-run accepts the package", () => {
  const deno = join(REPO, "node_modules", ".bin", "deno");
  const res = spawnSync(deno, ["publish", "--dry-run", "--allow-dirty"], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 240_000,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  const out = `${res.stdout}${res.stderr}`;
  expect(res.status, out).toBe(0);
  expect(out).toContain("Success Dry run complete");
}, 300_000);
