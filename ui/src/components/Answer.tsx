import type { Run } from "../useGeneration";
import { ErrorNotice } from "./ErrorNotice";

const STATUS_TEXT = {
  streaming: "Streaming…",
  done: "Complete",
  stopped: "Stopped (the router cancels the generation).",
  error: "Failed",
} as const;

/** The answer as it streams in. */
export function Answer({ run }: { run: Run }) {
  return (
    <section
      className="answer"
      data-testid="answer"
      data-state={run.status}
      aria-busy={run.status === "streaming"}
    >
      <h2>
        Answer <span className={`status status-${run.status}`}>{STATUS_TEXT[run.status]}</span>
      </h2>
      <pre data-testid="answer-text" aria-live="polite">
        {run.text}
        {run.status === "streaming" && <span className="cursor" aria-hidden="true">▍</span>}
      </pre>
      {run.error !== undefined && <ErrorNotice error={run.error} />}
    </section>
  );
}
