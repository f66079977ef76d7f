/**
 * `const etcd = useEtcd();` at the top of a test file (or a describe block): one real etcd for
 * those tests, started in beforeAll and stopped in afterAll. The returned object stands for the
 * server and may be used from tests and hooks once it has started.
 */
import { afterAll, beforeAll } from "bun:test";
import { startEtcd, type EtcdServer } from "./etcd.ts";

export function useEtcd(): EtcdServer {
  let server: EtcdServer | undefined;
  beforeAll(async () => {
    server = await startEtcd();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });
  const started = (): EtcdServer => {
    if (!server) throw new Error("useEtcd(): etcd is not started yet; use it inside tests and hooks, not at load time");
    return server;
  };
  return {
    get endpoint() {
      return started().endpoint;
    },
    get url() {
      return started().url;
    },
    get dataDir() {
      return started().dataDir;
    },
    get pid() {
      return started().pid;
    },
    client: (options) => started().client(options),
    pause: () => started().pause(),
    resume: () => started().resume(),
    kill: () => started().kill(),
    restart: () => started().restart(),
    stop: () => started().stop(),
  };
}
