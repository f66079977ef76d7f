/** T6: node commands have Go's names, parameters and compact wire JSON, and round-trip. */
import { expect, test } from "bun:test";
import { balance, decodeCommand, encodeCommand, freeze, stopTask, unfreeze } from "../../src/command.ts";

test("T6: freeze, unfreeze and balance have their names and no parameters; stop_task carries the task", () => {
  expect(freeze()).toEqual({ command: "freeze" });
  expect(unfreeze()).toEqual({ command: "unfreeze" });
  expect(balance()).toEqual({ command: "balance" });
  expect(stopTask("test")).toEqual({ command: "stop_task", parameters: { task: "test" } });
  expect(encodeCommand(balance())).toBe('{"command":"balance"}');
  expect(encodeCommand(stopTask("t1"))).toBe('{"command":"stop_task","parameters":{"task":"t1"}}');
});

test("T6: encode → decode round-trips name and parameters; malformed input is reported, not thrown", () => {
  for (const cmd of [freeze(), unfreeze(), balance(), stopTask("x<&>")]) {
    expect(decodeCommand(encodeCommand(cmd))).toEqual({ ok: true, command: cmd });
  }
  expect(decodeCommand("{nope").ok).toBe(false);
  expect(decodeCommand("[1]").ok).toBe(false);
  expect(decodeCommand('{"command":""}').ok).toBe(false);
  expect(decodeCommand('{"command":"x","parameters":3}').ok).toBe(false);
  expect(decodeCommand('{"command":"custom"}')).toEqual({ ok: true, command: { command: "custom" } });
});
