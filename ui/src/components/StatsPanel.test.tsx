import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import type { LastRequestStats } from "../api/types";
import { StatsPanel } from "./StatsPanel";

const STATS: LastRequestStats = {
  request_id: "r1",
  model_id: "m3",
  backend: "cpu",
  host: "cpu-node-1",
  confidence: 0.8,
  rationale: "code",
  latency_s: 1.234,
  ttft_s: 0.0456,
  tokens_per_s: 42.25,
  completion_tokens: 50,
  prompt_tokens: 12,
  cache_hit: false,
  fallbacks: [],
  backend_fallback: false,
};

afterEach(cleanup);

describe("StatsPanel", () => {
  it("shows latency, TTFT, tokens/s, tokens and cache hit from /last_request_stats", () => {
    render(<StatsPanel stats={STATS} />);
    expect(screen.getByTestId("stat-latency").textContent).toBe("1.23 s");
    expect(screen.getByTestId("stat-ttft").textContent).toBe("46 ms");
    expect(screen.getByTestId("stat-tokens-per-s").textContent).toBe("42.3");
    expect(screen.getByTestId("stat-tokens").textContent).toBe("12 → 50");
    expect(screen.getByTestId("stat-cache-hit").textContent).toBe("no");
  });

  it("marks a cache hit and does not claim a decode rate for it", () => {
    render(<StatsPanel stats={{ ...STATS, cache_hit: true, latency_s: 0.002 }} />);
    expect(screen.getByTestId("stat-cache-hit").textContent).toBe("yes");
    expect(screen.getByTestId("stat-tokens-per-s").textContent).toBe("– (cached)");
    expect(screen.getByTestId("stat-latency").textContent).toBe("2 ms");
  });

  it("says it is still reading, then shows a failure in words", () => {
    const { rerender } = render(<StatsPanel />);
    expect(screen.getByTestId("stats-loading")).toBeTruthy();
    rerender(<StatsPanel error={new ApiError("network", "The router could not be reached.")} />);
    expect(screen.getByRole("alert").textContent).toContain("Network connection lost");
  });
});
