/**
 * Preloaded before every test file (bunfig.toml): the same per-test timeout whether the suite
 * runs through `npm test` or a single file through `bun test <file>`. Integration tests wait for
 * real etcd servers and child processes on a possibly loaded 2-core machine; their waits carry
 * their own deadlines, this only keeps bun's 5 s default from cutting them short.
 */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
