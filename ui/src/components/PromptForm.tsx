import type { FormEvent, KeyboardEvent } from "react";
import { PREFER_BACKENDS, type PreferBackend } from "../api/types";

export interface PromptSettings {
  prompt: string;
  prefer: PreferBackend;
  maxTokens: number;
  temp: number;
}

interface Props {
  value: PromptSettings;
  onChange(value: PromptSettings): void;
  onSubmit(): void;
  onStop(): void;
  streaming: boolean;
}

const PREFER_LABELS: Record<PreferBackend, string> = {
  cpu: "CPU",
  gpu: "GPU",
  auto: "Auto (router)",
};

/** The prompt, the backend preference, a few sampling settings, Submit and Stop. */
export function PromptForm({ value, onChange, onSubmit, onStop, streaming }: Props) {
  const set = (change: Partial<PromptSettings>) => onChange({ ...value, ...change });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSubmit();
  };
  const keyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      onSubmit();
    }
  };
  return (
    <form className="prompt-form" onSubmit={submit}>
      <label htmlFor="prompt">Prompt</label>
      <textarea
        id="prompt"
        value={value.prompt}
        onChange={(e) => set({ prompt: e.target.value })}
        onKeyDown={keyDown}
        rows={5}
        placeholder="Ask something, e.g. Write a Python function that reverses a string."
      />
      <fieldset className="prefer">
        <legend>Prefer backend</legend>
        {PREFER_BACKENDS.map((backend) => (
          <label key={backend} className="choice">
            <input
              type="radio"
              name="prefer"
              value={backend}
              checked={value.prefer === backend}
              onChange={() => set({ prefer: backend })}
            />
            {PREFER_LABELS[backend]}
          </label>
        ))}
      </fieldset>
      <div className="sampling">
        <label>
          Max tokens
          <input
            type="number"
            min={1}
            max={2048}
            value={value.maxTokens}
            onChange={(e) => set({ maxTokens: Number(e.target.value) })}
          />
        </label>
        <label>
          Temperature
          <input
            type="number"
            min={0}
            max={2}
            step={0.1}
            value={value.temp}
            onChange={(e) => set({ temp: Number(e.target.value) })}
          />
        </label>
        <span className="hint">0 = deterministic: repeated answers come from the cache.</span>
      </div>
      <div className="actions">
        <button type="submit" disabled={streaming || value.prompt.trim() === ""}>
          Submit
        </button>
        <button type="button" onClick={onStop} disabled={!streaming}>
          Stop
        </button>
        <span className="hint">Ctrl/⌘ + Enter submits</span>
      </div>
    </form>
  );
}
