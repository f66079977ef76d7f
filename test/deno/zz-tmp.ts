import { defineHandler, type Handler } from "../../src/index.ts";
export const a = defineHandler({ async run() { return "done"; } });
export const b: Handler = { async run() { return "done"; } };
export const c = (): Handler => ({ async run() { return "done"; } });
export const d = (): Handler => ({ async run(task) { await Promise.resolve(); if (task.id) return "release"; return "done"; } });
