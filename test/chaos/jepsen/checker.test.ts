/**
 * The chaos checker on synthetic histories: a clean one passes, and each kind of violation is
 * found with its evidence. Fast (no etcd, no processes); the real runs are in jepsen.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { checkHistory, type FinalObservation } from "./checker.ts";
import type { FaultEvent, HistoryEvent, StartEvent, StepEvent } from "./history.ts";

const T = "chaos:t0";

function start(node: string, token: number, mono: number, task = T): StartEvent {
  return { k: "start", node, pid: 1, task, token, primitives: "ctx", mono, wall: mono };
}
function step(node: string, token: number, n: number, mono: number, task = T): StepEvent {
  return { k: "step", node, task, token, step: n, mono, wall: mono };
}
function stop(node: string, token: number, mono: number, reason = "lease", task = T): HistoryEvent {
  return { k: "stop", node, task, token, reason, steps: 0, mono, wall: mono };
}
function accepted(node: string, token: number, n: number, rev: number, mono: number, task = T): HistoryEvent {
  return { k: "commit", node, task, token, step: n, outcome: "accepted", rev, mono };
}
function fault(id: number, kind: FaultEvent["kind"], target: string, startAt: number, end: number): FaultEvent {
  return { k: "fault", id, kind, target, start: startAt, end, wall: startAt };
}

/** n1 runs T with token 10, is killed at 1000, n2 takes over with token 20 at 5000. */
function cleanHistory(): HistoryEvent[] {
  return [
    { k: "proc", node: "n1", pid: 1, event: "spawn", mono: 0, wall: 0 },
    { k: "proc", node: "n2", pid: 2, event: "spawn", mono: 0, wall: 0 },
    start("n1", 10, 100),
    step("n1", 10, 1, 150),
    accepted("n1", 10, 1, 11, 160),
    step("n1", 10, 2, 200),
    accepted("n1", 10, 2, 12, 210),
    fault(1, "node-kill", "n1", 1000, 9000),
    {
      k: "proc",
      node: "n1",
      pid: 1,
      event: "exit",
      expected: true,
      code: null,
      signal: "SIGKILL",
      mono: 1001,
      wall: 1001,
    },
    start("n2", 20, 5000),
    step("n2", 20, 1, 5050),
    accepted("n2", 20, 1, 21, 5060),
    { k: "register", task: T, token: 20, step: 1, node: "n2", rev: 21, mono: 5061 },
    { k: "proc", node: "n1", pid: 3, event: "spawn", mono: 8000, wall: 8000 },
  ];
}

function settledOn(node: string, token: number, task = T): FinalObservation {
  return {
    at: 20_000,
    views: [
      { node: "n1", tasks: [] },
      { node: "n2", tasks: node === "n2" ? [{ id: task, token, stopped: false }] : [] },
    ],
    owners: new Map([[task, { node, token }]]),
    liveNodes: ["n1", "n2"],
  };
}

describe("chaos history checker", () => {
  test("a clean history passes, with its failover figure", () => {
    const r = checkHistory(cleanHistory(), [T], settledOn("n2", 20));
    expect(r.violations).toEqual([]);
    expect(r.tasksLost).toEqual([]);
    expect(r.faultsByKind).toEqual({ "node-kill": 1 });
    expect(r.failover).toEqual([
      { kind: "node-kill", faults: 1, moved: 1, medianMs: 4000, worstMs: 4000, notBackInWindow: 0 },
    ]);
    expect(r.counts.steps).toBe(3);
  });

  test("a step by the older owner after the newer owner's first step is a stale step", () => {
    const h = [...cleanHistory(), step("n1", 10, 3, 5100)];
    const r = checkHistory(h, [T], settledOn("n2", 20));
    expect(r.violations.map((v) => v.kind)).toEqual(["stale-step"]);
    expect(r.violations[0]!.evidence).toMatchObject({
      staleNode: "n1",
      staleToken: 10,
      newerNode: "n2",
      newerToken: 20,
      lateByMs: 50,
      fault: "#1 node-kill n1 (during it)",
    });
  });

  test("a step by the older owner before the newer owner's first step is not one", () => {
    const h = [...cleanHistory(), step("n1", 10, 3, 4900)];
    expect(checkHistory(h, [T], settledOn("n2", 20)).violations).toEqual([]);
  });

  test("the register accepting a lower token after a higher one is found, from etcd's watch and from the handlers' answers", () => {
    const viaWatch = [
      ...cleanHistory(),
      { k: "register", task: T, token: 10, step: 3, node: "n1", rev: 22, mono: 5200 } as HistoryEvent,
    ];
    const a = checkHistory(viaWatch, [T], settledOn("n2", 20));
    expect(a.violations.map((v) => v.kind)).toEqual(["register-lower-token"]);
    expect(a.violations[0]!.evidence).toMatchObject({
      lowerToken: 10,
      higherToken: 20,
      lowerRev: 22,
      higherRev: 21,
      source: "etcd watch",
    });

    const viaHandler = [...cleanHistory(), accepted("n1", 10, 3, 23, 5300)];
    const b = checkHistory(viaHandler, [T], settledOn("n2", 20));
    expect(b.violations.map((v) => v.kind)).toEqual(["register-lower-token"]);
    expect(b.violations[0]!.evidence).toMatchObject({ source: "handler", lowerRev: 23 });
  });

  test("a rejected write is fencing working, not a violation", () => {
    const h = [
      ...cleanHistory(),
      {
        k: "commit",
        node: "n1",
        task: T,
        token: 10,
        step: 3,
        outcome: "rejected",
        stored: 20,
        mono: 5300,
      } as HistoryEvent,
    ];
    const r = checkHistory(h, [T], settledOn("n2", 20));
    expect(r.violations).toEqual([]);
    expect(r.counts.commitsRejected).toBe(1);
  });

  test("at the end: a task nobody runs is lost", () => {
    const final: FinalObservation = {
      ...settledOn("n2", 20),
      views: [
        { node: "n1", tasks: [] },
        { node: "n2", tasks: [] },
      ],
      owners: new Map(),
    };
    const r = checkHistory(cleanHistory(), [T], final);
    expect(r.violations.map((v) => v.kind)).toEqual(["not-running-once"]);
    expect(r.violations[0]!.message).toContain("no live node runs it");
    expect(r.tasksLost).toEqual([T]);
  });

  test("at the end: a task two nodes run is a violation", () => {
    const final = settledOn("n2", 20);
    final.views[0]!.tasks.push({ id: T, token: 10, stopped: false });
    const r = checkHistory(cleanHistory(), [T], final);
    expect(r.violations.map((v) => v.kind)).toEqual(["not-running-once"]);
    expect(r.violations[0]!.message).toContain("2 nodes run it");
  });

  test("at the end: an owner key that disagrees with /info, names a dead node, or a run the history never started", () => {
    const wrongToken = settledOn("n2", 20);
    wrongToken.owners.set(T, { node: "n2", token: 21 });
    expect(checkHistory(cleanHistory(), [T], wrongToken).violations[0]!.message).toContain(
      "owner key says n2#21 but /info says n2#20",
    );

    const deadOwner = settledOn("n2", 20);
    deadOwner.owners.set(T, { node: "n3", token: 20 });
    expect(checkHistory(cleanHistory(), [T], deadOwner).violations[0]!.message).toContain(
      "n3, which is not a live node",
    );

    const unknownRun = settledOn("n2", 30);
    expect(checkHistory(cleanHistory(), [T], unknownRun).violations[0]!.message).toContain(
      "no start by n2 with token 30",
    );
  });

  test("a node exit no fault caused is a violation; a signalled one is not", () => {
    const h = [
      ...cleanHistory(),
      {
        k: "proc",
        node: "n2",
        pid: 2,
        event: "exit",
        expected: false,
        code: 1,
        signal: null,
        tail: "boom",
        mono: 6000,
        wall: 6000,
      } as HistoryEvent,
    ];
    const r = checkHistory(h, [T], settledOn("n2", 20));
    expect(r.violations.map((v) => v.kind)).toEqual(["unexplained-exit"]);
    expect(r.violations[0]!.evidence).toMatchObject({ code: 1, tail: "boom" });
  });

  test("a run without a single step proves nothing and fails", () => {
    const h = cleanHistory().filter((e) => e.k !== "step");
    expect(checkHistory(h, [T], settledOn("n2", 20)).violations.map((v) => v.kind)).toEqual(["no-progress"]);
  });

  test("failover counts only the faulted node's tasks, leaves out the balancer's hand-overs, and says which did not come back before the next fault", () => {
    const h: HistoryEvent[] = [
      start("n1", 10, 100, "a"),
      start("n2", 11, 100, "b"),
      start("n1", 12, 100, "c"),
      step("n1", 10, 1, 150, "a"),
      fault(1, "node-pause", "n1", 1000, 6000),
      start("n2", 20, 5200, "a"),
      fault(2, "node-kill", "n2", 7000, 12_000),
      // a and b were both on n2; only b comes back before the end
      start("n1", 30, 10_000, "b"),
      // a compaction, then the balancer moves b: a planned hand-over, not a failover
      fault(3, "compaction", "etcd", 13_000, 13_010),
      stop("n1", 30, 14_000, "balance", "b"),
      start("n2", 60, 14_100, "b"),
    ];
    const final: FinalObservation = {
      at: 20_000,
      views: [
        { node: "n1", tasks: [{ id: "a", token: 40, stopped: false }] },
        {
          node: "n2",
          tasks: [
            { id: "c", token: 50, stopped: false },
            { id: "b", token: 60, stopped: false },
          ],
        },
      ],
      owners: new Map([
        ["a", { node: "n1", token: 40 }],
        ["b", { node: "n2", token: 60 }],
        ["c", { node: "n2", token: 50 }],
      ]),
      liveNodes: ["n1", "n2"],
    };
    // c was on the paused node too, and only came back after the next fault had begun.
    const r = checkHistory([...h, start("n1", 40, 11_000, "a"), start("n2", 50, 8000, "c")], ["a", "b", "c"], final);
    expect(r.violations).toEqual([]);
    const pause = r.failover.find((f) => f.kind === "node-pause")!;
    expect(pause).toEqual({
      kind: "node-pause",
      faults: 1,
      moved: 1,
      medianMs: 4200,
      worstMs: 4200,
      notBackInWindow: 1,
    });
    const kill = r.failover.find((f) => f.kind === "node-kill")!;
    expect(kill.moved).toBe(2);
    expect(kill.worstMs).toBe(4000);
    expect(kill.medianMs).toBe(3500);
    expect(r.failover.find((f) => f.kind === "compaction")).toEqual({
      kind: "compaction",
      faults: 1,
      moved: 0,
      notBackInWindow: 0,
    });
  });
});
