/**
 * The coordinator contract: what the consumer relies on from any Coordinator and Client,
 * run against every coordinator (memory.test.ts, embedded.test.ts, etcd.test.ts), like the
 * state machine's contract suite. The consumer is replaced by a RecordingContext; the
 * coordinator and its store are real.
 *
 * Each test gets a fresh environment (a new broker, data dir or namespace). Coordinators that
 * serve one node only (embedded) skip what needs two (`multiNode`).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { NodeNameTakenError, TaskExistsError } from "../../src/errors.ts";
import type { Claim, Client, Coordinator, Task } from "../../src/types.ts";
import { RecordingContext } from "../etcd/helpers.ts";
import { waitFor } from "../support/wait.ts";

export interface CoordinatorEnv {
  readonly client: Client;
  /** A coordinator for `node` on this environment's cluster (not yet initialised). */
  coordinator(node: string): Coordinator;
  /** Close everything the environment opened. */
  close(): Promise<void>;
}

export interface ContractOptions {
  /** Whether the environment serves several nodes (false: only the node named "n1"). */
  readonly multiNode: boolean;
  /** Generous bound for "eventually" (watch delivery over a network). */
  readonly timeout?: number;
}

/**
 * What a promise rejected with (undefined if it resolved). Not `expect(p).rejects`: Bun's
 * waits for a pending promise without running the event loop's I/O, so a gRPC call under it
 * never gets its answer and fails on its deadline.
 */
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

const task = (id: string, props: Record<string, unknown> = {}): Task => ({ id, props });

export function coordinatorContract(makeEnv: () => Promise<CoordinatorEnv>, options: ContractOptions): void {
  const timeout = options.timeout ?? 10_000;
  const multi = options.multiNode ? test : test.skip;
  let env: CoordinatorEnv | undefined;
  const started: Coordinator[] = [];

  afterEach(async () => {
    for (const c of started.splice(0).reverse()) await c.close().catch(() => undefined);
    await env?.close();
    env = undefined;
  });

  const setup = async (): Promise<CoordinatorEnv> => (env = await makeEnv());
  const join = async (
    e: CoordinatorEnv,
    node: string,
  ): Promise<{ coordinator: Coordinator; ctx: RecordingContext }> => {
    const coordinator = e.coordinator(node);
    const ctx = new RecordingContext(node);
    await coordinator.init(ctx);
    started.push(coordinator);
    return { coordinator, ctx };
  };
  const announced = (ctx: RecordingContext, id: string) =>
    waitFor(`task ${id} announced to ${ctx.node}`, () => ctx.announcedIds().has(id), { timeout });

  describe("coordinator contract", () => {
    test("a submitted task is announced to a live node with its props", async () => {
      const e = await setup();
      const { ctx } = await join(e, "n1");
      await e.client.submitTask("t1", { url: "https://example.com" });
      await announced(ctx, "t1");
      expect(ctx.lastAnnounced("t1")?.props).toEqual({ url: "https://example.com" });
    });

    test("submitting an id that exists is refused with TaskExistsError", async () => {
      const e = await setup();
      await e.client.submitTask("t1");
      expect(await failure(e.client.submitTask("t1"))).toBeInstanceOf(TaskExistsError);
    });

    test("of concurrent claims of one task exactly one succeeds", async () => {
      const e = await setup();
      const nodes = options.multiNode ? ["n1", "n2", "n3"] : ["n1"];
      const joined = await Promise.all(nodes.map((n) => join(e, n)));
      await e.client.submitTask("t1");
      await Promise.all(joined.map(({ ctx }) => announced(ctx, "t1")));
      // Three attempts per node, all at once.
      const claims = await Promise.all(
        joined.flatMap(({ coordinator }) => [1, 2, 3].map(() => coordinator.claim(task("t1")))),
      );
      expect(claims.filter((c) => c !== undefined)).toHaveLength(1);
    });

    test("claiming a task that does not exist fails", async () => {
      const e = await setup();
      const { coordinator } = await join(e, "n1");
      expect(await coordinator.claim(task("no-such-task"))).toBeUndefined();
    });

    test("fencing tokens rise strictly with every claim, across tasks and releases", async () => {
      const e = await setup();
      const nodes = options.multiNode ? ["n1", "n2"] : ["n1"];
      const joined = await Promise.all(nodes.map((n) => join(e, n)));
      for (const id of ["a", "b", "c"]) await e.client.submitTask(id);
      const tokens: number[] = [];
      for (let round = 0; round < 3; round++) {
        for (const id of ["a", "b", "c"]) {
          const { coordinator, ctx } = joined[(round + tokens.length) % joined.length]!;
          await announced(ctx, id);
          const claim = await waitFor<Claim | undefined>(
            `a claim of ${id} by ${ctx.node}`,
            () => coordinator.claim(task(id)),
            { timeout },
          );
          tokens.push(claim.token);
          await coordinator.release(task(id));
        }
      }
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    });

    test("tasks() shows the owner and token of a claimed task", async () => {
      const e = await setup();
      const { coordinator, ctx } = await join(e, "n1");
      await e.client.submitTask("t1", { n: 1 });
      await announced(ctx, "t1");
      const claim = await coordinator.claim(task("t1"));
      expect(claim).toBeDefined();
      const row = await waitFor(
        "t1 listed with its owner",
        async () => (await e.client.tasks()).find((t) => t.id === "t1" && t.owner),
        { timeout },
      );
      expect(row).toMatchObject({ id: "t1", props: { n: 1 }, owner: "n1", token: claim!.token });
    });

    test("a released task is announced again and can be claimed again", async () => {
      const e = await setup();
      const { coordinator, ctx } = await join(e, "n1");
      await e.client.submitTask("t1");
      await announced(ctx, "t1");
      expect(await coordinator.claim(task("t1"))).toBeDefined();
      const before = ctx.announced.length;
      await coordinator.release(task("t1"));
      await waitFor("t1 announced again after release", () => ctx.announced.slice(before).some((t) => t.id === "t1"), {
        timeout,
      });
      expect(await coordinator.claim(task("t1"))).toBeDefined();
    });

    multi("a task released by one node is announced to the others", async () => {
      const e = await setup();
      const a = await join(e, "n1");
      const b = await join(e, "n2");
      await e.client.submitTask("t1");
      await announced(a.ctx, "t1");
      expect(await a.coordinator.claim(task("t1"))).toBeDefined();
      const before = b.ctx.announced.length;
      await a.coordinator.release(task("t1"));
      await waitFor(
        "t1 announced to n2 after n1 released it",
        () => b.ctx.announced.slice(before).some((t) => t.id === "t1"),
        { timeout },
      );
      expect(await b.coordinator.claim(task("t1"))).toBeDefined();
    });

    test("done removes the task for good", async () => {
      const e = await setup();
      const { coordinator, ctx } = await join(e, "n1");
      await e.client.submitTask("t1");
      await e.client.submitTask("t10"); // a sibling whose id starts with "t1" survives
      await announced(ctx, "t1");
      expect(await coordinator.claim(task("t1"))).toBeDefined();
      await coordinator.done(task("t1"));
      await waitFor("t1 gone from tasks()", async () => !(await e.client.tasks()).some((t) => t.id === "t1"), {
        timeout,
      });
      expect(await coordinator.claim(task("t1"))).toBeUndefined();
      expect((await e.client.tasks()).map((t) => t.id)).toEqual(["t10"]);
    });

    test("deleting a running task tells its owner the claim is gone (deleted)", async () => {
      const e = await setup();
      const { coordinator, ctx } = await join(e, "n1");
      await e.client.submitTask("t1");
      await announced(ctx, "t1");
      expect(await coordinator.claim(task("t1"))).toBeDefined();
      expect(await e.client.deleteTask("t1")).toBe(true);
      await waitFor("lost(t1, deleted)", () => ctx.lostCalls.some((l) => l.id === "t1" && l.reason === "deleted"), {
        timeout,
      });
      expect(await e.client.deleteTask("t1")).toBe(false);
      expect(await coordinator.claim(task("t1"))).toBeUndefined();
    });

    test("node commands reach their node in submission order", async () => {
      const e = await setup();
      const { ctx } = await join(e, "n1");
      const sent = Array.from({ length: 8 }, (_, i) => ({ command: "stop_task", parameters: { task: `t${i}` } }));
      for (const cmd of sent) await e.client.submitCommand("n1", cmd);
      await waitFor("8 commands delivered", () => ctx.commands.length >= sent.length, { timeout });
      expect(ctx.commands).toEqual(sent);
    });

    test("nodes() lists the live nodes, and a closed node leaves it", async () => {
      const e = await setup();
      const { coordinator } = await join(e, "n1");
      await waitFor("n1 live", async () => (await e.client.nodes()).includes("n1"), { timeout });
      await coordinator.close();
      await waitFor("n1 gone", async () => !(await e.client.nodes()).includes("n1"), { timeout });
    });

    multi("a second live node with the same name is refused", async () => {
      const e = await setup();
      await join(e, "n1");
      const twin = e.coordinator("n1");
      expect(await failure(twin.init(new RecordingContext("n1")))).toBeInstanceOf(NodeNameTakenError);
      await twin.close().catch(() => undefined);
    });
  });
}
