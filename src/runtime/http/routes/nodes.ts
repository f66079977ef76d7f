/**
 * JSON API for nodes:
 *   GET  /api/nodes                     → {nodes: [{name, tasks}], self: {name, version, coordinator,
 *                                          started, frozen, running, leaseTtlMs?, keepaliveMs?,
 *                                          loopLagMs?, tokenRequired, handlers}}
 *        (self: this node's own figures, which other nodes' views do not carry)
 *   POST /api/nodes/:node/commands      {command: freeze|unfreeze|balance|stop_task, parameters?} → 202
 */
import { checkNodeCommand, checkNodeName, commandField } from "../../operator/validate.ts";
import { selfFigures } from "../../console/figures.ts";
import { asObject } from "../json.ts";
import type { Route } from "../types.ts";

const COMMAND_SHAPE =
  '{"command": "freeze" | "unfreeze" | "balance" | "stop_task", "parameters"?: {"task": "<id>"}} ("stop-task" = "stop_task"; "message" is accepted for "command")';
const COMMAND_FIELDS = ["command", "message", "parameters"] as const;

export const nodeRoutes: Route[] = [
  {
    method: "GET",
    path: "/api/nodes",
    async handle({ operator, services }) {
      return { status: 200, json: { nodes: await operator.nodes(), self: selfFigures(services) } };
    },
  },
  {
    method: "POST",
    path: "/api/nodes/:node/commands",
    changesState: true,
    async handle({ operator, params, body }) {
      const node = checkNodeName(params.node);
      const b = asObject(await body(), COMMAND_SHAPE, COMMAND_FIELDS);
      const command = checkNodeCommand(commandField(b), b.parameters);
      await operator.nodeCommand(node, command);
      return { status: 202, json: { node, ...command } };
    },
  },
];
