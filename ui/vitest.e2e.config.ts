import { defineConfig } from "vitest/config";

// End-to-end: a real Chromium against a real stack that tests/ui/test_e2e.py starts (it passes
// the router's URL in POLYLLM_E2E_URL). The steps share one page, so they run in order.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
});
