/**
 * Run by test/etcd/deno.test.ts under Deno: two consumers on EtcdCoordinators against a real
 * etcd (endpoint and namespace from argv) run 20 tasks to completion. Prints a summary line
 * and exits 0 only if every task ran exactly once and was deleted.
 */
import { Consumer, silentLogger, type HandlerResult } from "../../src/index.ts";
import { EtcdClient, EtcdCoordinator } from "../../src/etcd.ts";

const [endpoint, namespace] = process.argv.slice(2);
if (!endpoint || !namespace) {
  console.error("usage: deno run deno-program.ts <endpoint> <namespace>");
  process.exit(2);
}
const runs = new Map<string, number>();
const consumers = ["deno-1", "deno-2"].map((node) => {
  const coordinator = new EtcdCoordinator(
    { endpoints: [endpoint], namespace, node, leaseTtl: 3 },
    { log: silentLogger },
  );
  return new Consumer({
    coordinator,
    node,
    log: silentLogger,
    handler: {
      run: async (task): Promise<HandlerResult> => {
        runs.set(task.id, (runs.get(task.id) ?? 0) + 1);
        return "done";
      },
    },
  });
});
await Promise.all(consumers.map((c) => c.start()));
const client = EtcdClient.connect({ endpoints: [endpoint], namespace }, { log: silentLogger });
for (let i = 0; i < 20; i++) await client.submitTask(`d${i}`);
const deadline = Date.now() + 20_000;
while (Date.now() < deadline && (runs.size < 20 || (await client.tasks()).length > 0))
  await new Promise((r) => setTimeout(r, 50));
const left = (await client.tasks()).length;
await Promise.all(consumers.map((c) => c.shutdown({ timeout: 5000 })));
client.close();
const once = [...runs.values()].every((n) => n === 1);
console.log(`deno etcd: ${runs.size} tasks ran, each once: ${once}, left in etcd: ${left}`);
process.exit(runs.size === 20 && once && left === 0 ? 0 : 1);
