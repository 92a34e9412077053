import { useState } from "react";
import type { PreferBackend } from "./api/types";
import { Answer } from "./components/Answer";
import { ChartsPanel } from "./components/ChartsPanel";
import { PromptForm, type PromptSettings } from "./components/PromptForm";
import { RoutePanel } from "./components/RoutePanel";
import { StatsPanel } from "./components/StatsPanel";
import { useGeneration } from "./useGeneration";

const INITIAL: PromptSettings = { prompt: "", prefer: "auto", maxTokens: 128, temp: 0 };

export function App() {
  const [form, setForm] = useState(INITIAL);
  const { run, start, stop } = useGeneration();
  const streaming = run?.status === "streaming";

  const submit = () => {
    if (streaming || form.prompt.trim() === "") return;
    void start({
      prompt: form.prompt,
      prefer_backend: form.prefer,
      max_tokens: form.maxTokens,
      temp: form.temp,
    });
  };
  // The last run's request again, on another backend.
  const rerun = (backend: PreferBackend) => {
    if (run && !streaming) void start({ ...run.request, prefer_backend: backend });
  };

  return (
    <div className="app">
      <header className="top">
        <h1>PolyLLM</h1>
        <p>Several small models behind one router: it picks one for your prompt and says why.</p>
      </header>
      <main className="layout">
        <div className="column">
          <PromptForm
            value={form}
            onChange={setForm}
            onSubmit={submit}
            onStop={stop}
            streaming={streaming}
          />
          {run && <Answer run={run} />}
        </div>
        <div className="column">
          {run?.route ? (
            <>
              <RoutePanel
                route={run.route}
                final={run.final}
                requested={run.request.prefer_backend ?? "auto"}
              />
              {run.status === "done" && <StatsPanel stats={run.stats} error={run.statsError} />}
            </>
          ) : (
            <p className="hint placeholder">
              The router's choice, its reasons and the answer's metrics appear here.
            </p>
          )}
          {run && (
            <div className="rerun">
              <button type="button" disabled={streaming} onClick={() => rerun("gpu")}>
                Re-run on GPU
              </button>
              <button type="button" disabled={streaming} onClick={() => rerun("cpu")}>
                Re-run on CPU
              </button>
            </div>
          )}
        </div>
      </main>
      <ChartsPanel />
    </div>
  );
}
