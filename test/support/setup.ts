/**
 * Preloaded by bunfig.toml. `npm test` passes `--timeout 60000` to bun test, which applies to
 * every file; this preload gives the same timeout to a single file run directly
 * (`bun test test/etcd/lease.test.ts`): bun 1.4 applies a preloaded setDefaultTimeout to the
 * first test file only, and ignores bunfig's own timeout key. Integration tests wait for real
 * etcd servers and child processes on a possibly loaded 2-core machine; their waits carry their
 * own deadlines, this only keeps bun's 5 s default from cutting them short.
 */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
