/**
 * A consumer cluster on the memory coordinator, run under Deno (and Bun) as a plain program:
 * 3 nodes, 300 tasks, each handler records its run and finishes "done". Exits 0 when every
 * task ran exactly once and the broker is empty, 1 otherwise (printing why).
 * Run: deno run --allow-env --allow-read test/deno/cluster.ts   (imports the library through
 * src/index.ts; env for consola, read for etcd3's .proto files)
 */
import { Consumer, defineHandler, MemoryBroker, silentLogger, type Handler } from "../../src/index.ts";

const TASKS = 300;
const NODES = ["deno-a", "deno-b", "deno-c"];

async function main(): Promise<string[]> {
  const problems: string[] = [];
  const broker = new MemoryBroker();
  const client = broker.client();
  const runs = new Map<string, number>();
  const perNode = new Map<string, number>();

  const handlerFor = (node: string): Handler =>
    defineHandler({
      async run(task, ctx) {
        runs.set(task.id, (runs.get(task.id) ?? 0) + 1);
        perNode.set(node, (perNode.get(node) ?? 0) + 1);
        // Yield once so runs overlap, and check the context is wired.
        await new Promise((resolve) => setTimeout(resolve, 1));
        if (ctx.node !== node || !(ctx.token > 0) || ctx.signal.aborted) problems.push(`bad context for ${task.id}`);
        return "done";
      },
    });
  const consumers = NODES.map(
    (node) =>
      new Consumer({
        coordinator: broker.coordinator(node),
        node,
        handler: handlerFor(node),
        balanceEvery: Infinity,
        log: silentLogger,
      }),
  );
  await Promise.all(consumers.map((c) => c.start()));
  for (let i = 0; i < TASKS; i++) await client.submitTask(`task-${i}`, { i });

  const deadline = Date.now() + 20_000;
  while ((await client.tasks()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const reports = await Promise.all(consumers.map((c) => c.shutdown({ timeout: 5000 })));

  const left = await client.tasks();
  if (left.length > 0) problems.push(`${left.length} task(s) never finished, e.g. ${left[0]!.id}`);
  for (let i = 0; i < TASKS; i++) {
    const n = runs.get(`task-${i}`) ?? 0;
    if (n !== 1) problems.push(`task-${i} ran ${n} times`);
  }
  if (!reports.every((r) => r.clean)) problems.push(`unclean shutdown: ${JSON.stringify(reports)}`);
  if ((await client.nodes()).length !== 0) problems.push("nodes still registered after shutdown");
  const runtime = "Deno" in globalThis ? "deno" : "bun";
  console.log(`${runtime}: ${TASKS} tasks, runs per node ${JSON.stringify(Object.fromEntries(perNode))}`);
  return problems;
}

const problems = await main().catch((err: unknown) => [`crashed: ${err instanceof Error ? err.stack : String(err)}`]);
if (problems.length > 0) {
  console.error(`FAIL\n${problems.slice(0, 20).join("\n")}`);
  process.exit(1);
}
console.log("OK: every task ran exactly once");
process.exit(0);
