// @ts-check
/**
 * The demo, recorded: drives the UI in Chromium (playwright-core) through the demo script and
 * saves a video plus screenshots. Run by `polyllm demo record`, which passes:
 *   DEMO_URL         the router serving the UI          DEMO_OUT   folder for the outputs
 *   DEMO_ROUTER_LOG  the router's log file (JSON lines)  DEMO_PROMPT the prompt
 *   CHROMIUM         the browser (default /usr/bin/chromium)
 * Steps: Prefer CPU → Submit → result (model, rationale, metrics); Prefer GPU → the same prompt;
 * the benchmark charts; the router's log line for the last request.
 *
 * The video: Playwright's own recorder needs an ffmpeg build it downloads, so the page is filmed
 * with Chromium's screencast (DevTools protocol) instead, its frames piped to Debian's ffmpeg.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (/** @type {string} */ name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run: polyllm demo record)`);
  return value;
};
const url = env("DEMO_URL");
const out = env("DEMO_OUT");
const routerLog = env("DEMO_ROUTER_LOG");
const prompt = env("DEMO_PROMPT");
const size = { width: 960, height: 600 }; // small video: low resolution, short
const FPS = 8;

const pause = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A caption bar at the top of the page, so the video explains itself. */
async function caption(/** @type {import("playwright-core").Page} */ page, /** @type {string} */ text) {
  await page.evaluate((text) => {
    let bar = document.getElementById("demo-caption");
    if (!bar) {
      bar = document.createElement("div");
      bar.id = "demo-caption";
      bar.style.cssText =
        "position:fixed;left:0;right:0;bottom:0;z-index:9;padding:8px 14px;font:600 15px system-ui;" +
        "background:rgba(20,24,31,.88);color:#fff";
      document.body.append(bar);
    }
    bar.textContent = text;
  }, text);
  console.log(`demo: ${text}`);
}

/** The router's JSON log line for `requestId` (it is written when the answer is recorded). */
async function logLine(/** @type {string} */ requestId) {
  for (let i = 0; i < 50; i++) {
    const lines = existsSync(routerLog) ? readFileSync(routerLog, "utf8").split("\n") : [];
    const line = lines.find((l) => l.includes(`"request_id": "${requestId}"`) && l.includes('"msg": "request"'));
    if (line) return line;
    await pause(100);
  }
  throw new Error(`no log line for request ${requestId} in ${routerLog}`);
}

/** Film `page` into `path` (VP8 .webm) until the returned function is called. */
async function film(/** @type {import("playwright-core").Page} */ page, /** @type {string} */ path) {
  const ffmpeg = spawn(
    "ffmpeg",
    ["-loglevel", "error", "-y", "-f", "image2pipe", "-c:v", "mjpeg", "-framerate", String(FPS), "-i", "-",
     "-an", "-c:v", "libvpx", "-b:v", "250k", "-crf", "32", "-deadline", "realtime", "-cpu-used", "8",
     "-pix_fmt", "yuv420p", path],
    { stdio: ["pipe", "inherit", "inherit"] },
  );
  const ended = new Promise((resolve, reject) =>
    ffmpeg.on("exit", (code) => (code === 0 ? resolve(undefined) : reject(new Error(`ffmpeg exited ${code}`)))),
  );
  const cdp = await page.context().newCDPSession(page);
  /** @type {Buffer | null} */
  let frame = null;
  cdp.on("Page.screencastFrame", ({ data, sessionId }) => {
    frame = Buffer.from(data, "base64");
    cdp.send("Page.screencastFrameAck", { sessionId }).catch(() => undefined);
  });
  await cdp.send("Page.startScreencast", { format: "jpeg", quality: 70, ...{ maxWidth: size.width, maxHeight: size.height } });
  // Chromium sends a frame when the page changes; the video needs one every 1/FPS s.
  const timer = setInterval(() => frame && ffmpeg.stdin.write(frame), 1000 / FPS);
  return async () => {
    clearInterval(timer);
    await cdp.send("Page.stopScreencast");
    ffmpeg.stdin.end();
    await ended;
  };
}

async function ask(/** @type {import("playwright-core").Page} */ page, /** @type {string} */ backend) {
  await page.getByLabel(backend === "gpu" ? "GPU" : "CPU").check();
  await page.getByRole("button", { name: "Submit" }).click();
  await page.waitForSelector('[data-testid="answer"][data-state="done"]', { timeout: 180_000 });
  await page.getByTestId("stats").waitFor({ timeout: 10_000 });
}

mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: size });
  await page.goto(url);
  const stopFilming = await film(page, join(out, "demo.webm"));
  await caption(page, "PolyLLM: one router in front of several small models");
  await pause(1500);

  await caption(page, "1 · Prefer CPU, type a prompt, Submit");
  await page.getByLabel("Max tokens").fill("64"); // a short answer keeps the video short
  await page.getByLabel("Prompt").pressSequentially(prompt, { delay: 15 });
  await ask(page, "cpu");
  await caption(page, "1 · The router's choice: model@host, confidence, rationale, metrics");
  await page.getByTestId("route").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(out, "01-cpu-result.png"), fullPage: true });
  await pause(3000);

  await caption(page, "2 · Prefer GPU, the same prompt");
  await page.getByLabel("Prompt").scrollIntoViewIfNeeded();
  await ask(page, "gpu");
  await caption(page, "2 · On GPU (or an honest backend fallback when no GPU backend is up)");
  await page.getByTestId("route").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(out, "02-gpu-result.png"), fullPage: true });
  await pause(3000);
  const requestId = (await page.getByTestId("request-id").textContent()) ?? "";

  await caption(page, "3 · Benchmarks: live Prometheus figures and committed plots");
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.getByTestId("charts").scrollIntoViewIfNeeded();
  await pause(1500);
  await page.screenshot({ path: join(out, "03-benchmarks.png") });
  await pause(2500);

  const line = await logLine(requestId);
  await page.evaluate((line) => {
    const pre = document.createElement("pre");
    pre.id = "demo-log";
    pre.style.cssText =
      "position:fixed;left:12px;right:12px;top:12px;z-index:9;margin:0;padding:12px;max-height:70vh;" +
      "overflow:auto;white-space:pre-wrap;word-break:break-all;font:12px ui-monospace,monospace;" +
      "background:#0f1419;color:#c5e1a5;border-radius:6px";
    pre.textContent = "$ tail router.log   (one JSON line per request)\n\n" + JSON.stringify(JSON.parse(line), null, 1);
    document.body.append(pre);
  }, line);
  await caption(page, "4 · The router's log line for that request (no prompt text, only its hash)");
  await page.screenshot({ path: join(out, "04-router-log.png") });
  await pause(3500);

  await stopFilming();
  console.log(`demo: wrote ${join(out, "demo.webm")} and 4 screenshots`);
} finally {
  await browser.close();
}
