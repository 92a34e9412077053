/** One generation at a time: stream it, stop it, then read the router's stats for it. */
import { useCallback, useEffect, useRef, useState } from "react";
import { isAbort, lastRequestStats, streamGenerate } from "./api/client";
import type { GenerateRequest, LastRequestStats, RouteEvent, RouterStats } from "./api/types";

export type RunStatus = "streaming" | "done" | "stopped" | "error";

export interface Run {
  id: number;
  request: GenerateRequest;
  status: RunStatus;
  text: string;
  chunks: number;
  route?: RouteEvent;
  final?: RouterStats;
  stats?: LastRequestStats;
  statsError?: unknown;
  error?: unknown;
}

export function useGeneration() {
  const [run, setRun] = useState<Run | null>(null);
  const controller = useRef<AbortController | null>(null);
  const lastId = useRef(0);

  useEffect(() => () => controller.current?.abort(), []);

  const start = useCallback(async (request: GenerateRequest) => {
    controller.current?.abort();
    const ctrl = new AbortController();
    controller.current = ctrl;
    const id = ++lastId.current;
    // Only this run's events may change the state (a stopped run's late events are ignored).
    const update = (change: (r: Run) => Run) =>
      setRun((current) => (current?.id === id ? change(current) : current));
    setRun({ id, request, status: "streaming", text: "", chunks: 0 });
    let final: RouterStats | undefined;
    try {
      await streamGenerate(
        request,
        {
          onRoute: (route) => update((r) => ({ ...r, route })),
          onToken: (token) =>
            update((r) => ({ ...r, text: r.text + token.text, chunks: r.chunks + 1 })),
          onDone: (stats) => {
            final = stats;
            update((r) => ({ ...r, final: stats, status: "done" }));
          },
        },
        ctrl.signal,
      );
    } catch (error) {
      update((r) => (isAbort(error) ? { ...r, status: "stopped" } : { ...r, status: "error", error }));
      return;
    } finally {
      if (controller.current === ctrl) controller.current = null;
    }
    if (final === undefined) return;
    try {
      const stats = await lastRequestStats(final.request_id);
      update((r) => ({ ...r, stats }));
    } catch (statsError) {
      update((r) => ({ ...r, statsError }));
    }
  }, []);

  const stop = useCallback(() => controller.current?.abort(), []);

  return { run, start, stop };
}
