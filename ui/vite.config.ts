/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` serves the UI on :5173 and sends API calls to a router (default: make up's).
const router = process.env.POLYLLM_ROUTER_URL ?? "http://127.0.0.1:8000";
const api = ["/generate", "/last_request_stats", "/ui", "/health", "/models"];

export default defineConfig({
  plugins: [react()],
  server: {
    port: 5173,
    proxy: Object.fromEntries(api.map((path) => [path, router])),
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
