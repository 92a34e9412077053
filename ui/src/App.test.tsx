import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./App";
import type { LastRequestStats, RouteEvent, RouterStats } from "./api/types";

const ROUTE: RouteEvent = {
  request_id: "req-1",
  model: "m3",
  backend: "cpu",
  host: "cpu-node-1",
  confidence: 0.62,
  probabilities: { m1: 0.1, m3: 0.62, m2: 0.28 },
  rationale: "has_code +2.00\nprompt is short",
  contributions: { has_code: 2, short_answer: -0.5 },
  policy: "heuristic",
  forced: false,
  backend_fallback: true,
  cache_hit: false,
};
const DONE: RouterStats = {
  ...ROUTE,
  finish_reason: "stop",
  prompt_tokens: 9,
  completion_tokens: 2,
  ttft_s: 0.05,
  latency_s: 0.3,
  tokens_per_s: 20,
  fallbacks: [{ from_model: "m2", to_model: "m3", reason: "http_500" }],
};
const STATS: LastRequestStats = {
  request_id: "req-1",
  model_id: "m3",
  backend: "cpu",
  host: "cpu-node-1",
  confidence: 0.62,
  rationale: ROUTE.rationale,
  latency_s: 0.3,
  ttft_s: 0.05,
  tokens_per_s: 20,
  completion_tokens: 2,
  prompt_tokens: 9,
  cache_hit: false,
  fallbacks: DONE.fallbacks ?? [],
  backend_fallback: true,
};

type Handler = (init?: RequestInit) => Response | Promise<Response>;

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function sse(frames: string[]): Response {
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const frame of frames) controller.enqueue(encoder.encode(frame));
      controller.close();
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

let routes: Record<string, Handler>;
let sent: unknown[];

beforeEach(() => {
  sent = [];
  routes = {
    "/ui/benchmarks": () => json({ folder: "docs/benchmarks", charts: [] }),
    "/ui/figures": () =>
      json(
        { error: { message: "Prometheus at http://p:9090 is not reachable", code: "prometheus_unavailable" } },
        503,
      ),
    "/last_request_stats": () => json(STATS),
  };
  vi.stubGlobal("fetch", async (url: string, init?: RequestInit) => {
    const handler = routes[url];
    if (!handler) throw new TypeError(`no route for ${url}`);
    if (init?.body) sent.push(JSON.parse(String(init.body)));
    return handler(init);
  });
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

function ask(prompt: string) {
  fireEvent.change(screen.getByLabelText("Prompt"), { target: { value: prompt } });
  fireEvent.keyDown(screen.getByLabelText("Prompt"), { key: "Enter", ctrlKey: true });
}

describe("App", () => {
  it("streams an answer, then shows the choice, its reasons, markers and metrics", async () => {
    routes["/generate"] = () =>
      sse([frame("route", ROUTE), frame("token", { text: "def ", index: 0 }),
           frame("token", { text: "f(): ...", index: 1 }), frame("done", DONE)]); // prettier-ignore
    render(<App />);
    fireEvent.click(screen.getByLabelText("GPU"));
    ask("Write a Python function.");
    await waitFor(() => expect(screen.getByTestId("stats")).toBeTruthy());
    expect(sent[0]).toMatchObject({ prompt: "Write a Python function.", prefer_backend: "gpu", temp: 0 });
    expect(screen.getByTestId("answer-text").textContent).toBe("def f(): ...");
    expect(screen.getByTestId("route-model").textContent).toBe("m3@cpu-node-1");
    expect(screen.getByTestId("confidence").textContent).toBe("confidence 62%");
    expect([...screen.getByTestId("rationale").querySelectorAll("li")].map((li) => li.textContent))
      .toEqual(["has_code +2.00", "prompt is short"]); // prettier-ignore
    expect(screen.getByTestId("contributions").textContent).toContain("has_code+2.00");
    expect(screen.getByTestId("contributions").textContent).toContain("short_answer−0.50");
    expect(screen.getByLabelText("m2 28%")).toBeTruthy();
    expect(screen.getByTestId("backend-fallback").textContent).toContain(
      "you asked for GPU, but no GPU backend is up, so it ran on CPU",
    );
    expect(screen.getByTestId("fallbacks").textContent).toContain("m2 → m3: answered HTTP 500");
    expect(screen.getByTestId("stat-latency").textContent).toBe("300 ms");
  });

  it("re-runs the same prompt with prefer_backend set", async () => {
    routes["/generate"] = () => sse([frame("route", ROUTE), frame("done", DONE)]);
    render(<App />);
    ask("same prompt");
    await waitFor(() => expect(screen.getByTestId("stats")).toBeTruthy());
    fireEvent.click(screen.getByText("Re-run on CPU"));
    await waitFor(() => expect(sent).toHaveLength(2));
    expect(sent[1]).toMatchObject({ prompt: "same prompt", prefer_backend: "cpu" });
  });

  it("says when to retry after a 429", async () => {
    routes["/generate"] = () =>
      json({ error: { message: "rate limit of 60 requests exceeded", code: "rate_limited" } }, 429, {
        "Retry-After": "7",
      });
    render(<App />);
    ask("hi");
    const alert = await screen.findByTestId("error");
    expect(alert.textContent).toContain("Too many requests");
    expect(alert.textContent).toContain("Try again in 7 seconds.");
  });

  it("says no model is available on a 503 from the router", async () => {
    routes["/generate"] = () =>
      json({ error: { message: "no auto backend is up", code: "no_healthy_backend" } }, 503, {
        "Retry-After": "5",
      });
    render(<App />);
    ask("hi");
    const alert = await screen.findByTestId("error");
    expect(alert.textContent).toContain("No model is available right now");
    expect(alert.textContent).toContain("no auto backend is up");
  });

  it("says the network is lost when the router cannot be reached", async () => {
    routes["/generate"] = () => Promise.reject(new TypeError("Failed to fetch"));
    render(<App />);
    ask("hi");
    expect((await screen.findByTestId("error")).textContent).toContain("Network connection lost");
  });

  it("says the connection was lost when the stream ends before done", async () => {
    routes["/generate"] = () => sse([frame("route", ROUTE), frame("token", { text: "par", index: 0 })]);
    render(<App />);
    ask("hi");
    const alert = await screen.findByTestId("error");
    expect(alert.textContent).toContain("lost mid-answer");
    expect(screen.getByTestId("answer").getAttribute("data-state")).toBe("error");
    expect(screen.getByTestId("answer-text").textContent).toBe("par");
  });

  it("shows a model failing mid-answer (an error event)", async () => {
    routes["/generate"] = () =>
      sse([frame("route", ROUTE), frame("error", { message: "backend closed", code: "read" })]);
    render(<App />);
    ask("hi");
    expect((await screen.findByTestId("error")).textContent).toContain("The answer broke off");
  });

  it("explains that live figures need Prometheus", async () => {
    render(<App />);
    const alert = await screen.findByTestId("figures-error");
    expect(alert.textContent).toContain("Live figures are unavailable");
    expect(screen.getByTestId("plots-empty").textContent).toContain("docs/benchmarks/*.png");
  });
});
