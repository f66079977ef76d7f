/**
 * Bun macros that build the console page: run by Bun's transpiler, never at run time.
 *
 * `import … with { type: "macro" }` makes Bun call these functions while it bundles
 * (`bun build --compile` for the binary) and inline the strings they return, so the compiled
 * binary carries the page and needs no file, CDN or network. From source (`npm start`), Bun
 * runs them when assets.ts is first imported, i.e. on the first request for the console.
 * There is no generated file to keep in sync and no separate build step for the page.
 *
 * Bun.build cannot be called from inside a macro (the bundler would wait for itself), so the
 * script is bundled by a child `bun build` (the running Bun's own executable).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const APP = join(import.meta.dir, "app");

/** The page's script: app/main.ts with Preact, htm and uPlot, minified ES module for browsers. */
export function consoleScript(): string {
  const res = Bun.spawnSync(
    [process.execPath, "build", join(APP, "main.ts"), "--target=browser", "--format=esm", "--minify"],
    {
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  if (res.exitCode !== 0)
    throw new Error(`bundling the console failed (bun build exited ${res.exitCode}):\n${res.stderr.toString()}`);
  return res.stdout.toString();
}

/** The page's styles: uPlot's stylesheet, then ours. */
export function consoleStyles(): string {
  const uplot = readFileSync(join(import.meta.dir, "../../../node_modules/uplot/dist/uPlot.min.css"), "utf8");
  return `${uplot}\n${readFileSync(join(APP, "style.css"), "utf8")}`;
}
