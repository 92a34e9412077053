import type { LastRequestStats } from "../api/types";
import { duration, rate } from "../format";
import { ErrorNotice } from "./ErrorNotice";

interface Props {
  stats?: LastRequestStats;
  error?: unknown;
}

/** The metrics snapshot of the last answer, as the router measured it (/last_request_stats). */
export function StatsPanel({ stats, error }: Props) {
  if (error !== undefined) return <ErrorNotice error={error} testId="stats-error" />;
  if (stats === undefined) {
    return (
      <p className="hint" data-testid="stats-loading">
        Reading the router's stats…
      </p>
    );
  }
  const rows: [string, string, string][] = [
    ["latency", "Latency", duration(stats.latency_s)],
    ["ttft", "Time to first token", duration(stats.ttft_s)],
    ["tokens-per-s", "Tokens/s", stats.cache_hit ? "– (cached)" : rate(stats.tokens_per_s)],
    ["tokens", "Tokens (prompt → answer)", `${stats.prompt_tokens} → ${stats.completion_tokens}`],
    ["cache-hit", "Cache hit", stats.cache_hit ? "yes" : "no"],
  ];
  return (
    <section className="stats" data-testid="stats">
      <h2>Metrics</h2>
      <dl>
        {rows.map(([id, label, value]) => (
          <div key={id} className="stat">
            <dt>{label}</dt>
            <dd data-testid={`stat-${id}`}>{value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
