/**
 * The UI in a real Chromium against a real stack (Redis, the m1 model service, the router serving
 * ui/dist), started by tests/ui/test_e2e.py on free ports. The steps share one page and run in
 * order, like a person using it. Screenshots go to POLYLLM_E2E_ARTIFACTS.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, metric } from "./browser";

const BASE = required("POLYLLM_E2E_URL");
const M1 = required("POLYLLM_E2E_M1_URL");
const ARTIFACTS = process.env.POLYLLM_E2E_ARTIFACTS ?? "test-results/e2e";
const LONG_PROMPT = "Write a long story about a dragon who learns to cook. Make it at least 800 words.";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through tests/ui/test_e2e.py`);
  return value;
}

let browser: Browser;
let page: Page;

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function submitPrompt(prompt: string, maxTokens: number): Promise<void> {
  await page.getByLabel("Prompt").fill(prompt);
  await page.getByLabel("Max tokens").fill(String(maxTokens));
  await page.getByLabel("Prompt").press("Control+Enter");
}

async function waitForState(state: string, timeout = 90_000): Promise<void> {
  await page.waitForSelector(`[data-testid="answer"][data-state="${state}"]`, { timeout });
}

const text = async (testId: string) => (await page.getByTestId(testId).textContent()) ?? "";

describe("the PolyLLM UI", () => {
  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(BASE);
  });

  afterAll(async () => {
    await browser?.close();
  });

  it("streams tokens before the answer completes, then shows model, confidence, rationale", async () => {
    await page.getByLabel("Auto (router)").check();
    await submitPrompt("Write a short poem about the sea.", 96);
    // Text on the page while the answer is still streaming: tokens arrive one by one.
    await page.waitForFunction(
      () => {
        const answer = document.querySelector('[data-testid="answer"]');
        const text = document.querySelector('[data-testid="answer-text"]')?.textContent ?? "";
        return answer?.getAttribute("data-state") === "streaming" && text.replace("▍", "").length > 0;
      },
      undefined,
      { timeout: 60_000, polling: 10 },
    );
    await shot("01-streaming");
    await waitForState("done");
    expect(await text("route-model")).toBe("m1@cpu-node-1");
    expect(await text("confidence")).toMatch(/^confidence \d+%$/);
    expect((await text("rationale")).length).toBeGreaterThan(0);
    expect(await text("probabilities")).toContain("m1");
    await page.getByTestId("stats").waitFor();
    expect(await text("stat-latency")).toMatch(/\d+ (ms|s)$/);
    expect(await text("stat-ttft")).toMatch(/\d+ (ms|s)$/);
    expect(await text("stat-cache-hit")).toBe("no");
    await shot("02-done");
  });

  it("re-runs on CPU, and an identical deterministic re-run is a cache hit", async () => {
    await page.getByRole("button", { name: "Re-run on CPU" }).click();
    await waitForState("done");
    await page.getByTestId("stats").waitFor();
    expect(await text("route-model")).toBe("m1@cpu-node-1");
    const first = await text("answer-text");
    expect(await page.getByTestId("cache-hit").count()).toBe(0);

    await page.getByRole("button", { name: "Re-run on CPU" }).click();
    await waitForState("done");
    await page.getByTestId("cache-hit").waitFor();
    await page.getByTestId("stats").waitFor();
    expect(await text("stat-cache-hit")).toBe("yes");
    expect(await text("answer-text")).toBe(first);
    await shot("03-cache-hit");
  });

  it("re-runs on GPU and says honestly that no GPU backend is up", async () => {
    await page.getByRole("button", { name: "Re-run on GPU" }).click();
    await waitForState("done");
    expect(await text("backend-fallback")).toContain("no GPU backend is up");
    expect(await text("route-model")).toBe("m1@cpu-node-1");
    await shot("04-gpu-fallback");
  });

  it("stops mid-stream, and the model service cancels the generation", async () => {
    const cancelled = () => metric(M1, "polyllm_model_requests_total", { model: "m1", status: "cancelled" });
    const routerCancelled = () => metric(BASE, "polyllm_router_requests_total", { status: "cancelled" });
    const before = { model: await cancelled(), router: await routerCancelled() };
    await submitPrompt(LONG_PROMPT, 1000);
    await page.waitForFunction(
      () => (document.querySelector('[data-testid="answer-text"]')?.textContent ?? "").length > 20,
      undefined,
      { timeout: 60_000, polling: 10 },
    );
    const seen = (await text("answer-text")).replace("▍", "");
    await page.getByRole("button", { name: "Stop" }).click();
    await waitForState("stopped", 5_000);
    expect(await text("answer-text")).toContain(seen); // what had arrived stays on the page
    expect(await page.getByTestId("answer").getByRole("alert").count()).toBe(0); // not an error
    await shot("05-stopped");
    // The model service counts the request as cancelled: it stopped decoding, far before 1000
    // tokens (about 30 s on m1 here). The router counts it too.
    const deadline = Date.now() + 10_000;
    while ((await cancelled()) <= before.model || (await routerCancelled()) <= before.router) {
      expect(Date.now(), "the generation was not cancelled server-side").toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await metric(M1, "polyllm_model_queue_depth", { model: "m1" })).toBe(0);
  });

  it("says in plain words that live figures need Prometheus", async () => {
    await page.getByTestId("figures-error").waitFor();
    expect(await text("figures-error")).toContain("Live figures are unavailable");
    expect(await text("figures-error")).toContain("not reachable");
  });

  it("fits a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);
    await shot("06-phone");
  });
});
