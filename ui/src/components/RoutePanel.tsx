import type { PreferBackend, RouteEvent, RouterStats } from "../api/types";
import { percent, reason, signed } from "../format";

interface Props {
  route: RouteEvent;
  final?: RouterStats;
  requested: PreferBackend;
}

/** Which model answered, where, how sure the router was, and why. */
export function RoutePanel({ route, final, requested }: Props) {
  const fallbacks = final?.fallbacks ?? [];
  return (
    <section className="route" data-testid="route">
      <h2>Router's choice</h2>
      <p className="chosen">
        <span className="model-at-host" data-testid="route-model">
          {route.model}@{route.host}
        </span>
        <span className={`badge badge-${route.backend}`}>{route.backend.toUpperCase()}</span>
        <span className="confidence" data-testid="confidence">
          confidence {percent(route.confidence)}
        </span>
      </p>
      <p className="policy">
        policy <code>{route.policy}</code>
        {route.forced && " (model forced by the request)"} · request{" "}
        <code data-testid="request-id">{route.request_id}</code>
      </p>
      <Markers route={route} requested={requested} />
      {fallbacks.length > 0 && (
        <div className="notice notice-warn" data-testid="fallbacks">
          <strong>Fallback</strong>
          <ul>
            {fallbacks.map((f, i) => (
              <li key={i}>
                {f.from_model} → {f.to_model ?? "nobody"}: {reason(f.reason)}
              </li>
            ))}
          </ul>
        </div>
      )}
      <h3>Rationale</h3>
      <ul className="rationale" data-testid="rationale">
        {route.rationale
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line, i) => (
            <li key={i}>{line}</li>
          ))}
      </ul>
      <Contributions values={route.contributions ?? {}} />
      <Probabilities values={route.probabilities} chosen={route.model} />
    </section>
  );
}

function Markers({ route, requested }: { route: RouteEvent; requested: PreferBackend }) {
  return (
    <>
      {route.cache_hit && (
        <p className="notice notice-info" data-testid="cache-hit">
          <strong>Cache hit</strong> — the same deterministic request was answered before; this
          answer came from Redis without running a model.
        </p>
      )}
      {route.backend_fallback && (
        <p className="notice notice-warn" data-testid="backend-fallback">
          <strong>Backend fallback</strong> — you asked for {requested.toUpperCase()}, but no{" "}
          {requested.toUpperCase()} backend is up, so it ran on {route.backend.toUpperCase()}.
        </p>
      )}
    </>
  );
}

function Contributions({ values }: { values: Record<string, number> }) {
  const rows = Object.entries(values).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  if (rows.length === 0) return null;
  const scale = Math.max(...rows.map(([, v]) => Math.abs(v)), 1e-9);
  return (
    <>
      <h3>Feature contributions</h3>
      <p className="hint">Positive pushes towards bigger models, negative towards smaller ones.</p>
      <table className="contributions" data-testid="contributions">
        <tbody>
          {rows.map(([feature, value]) => (
            <tr key={feature}>
              <th scope="row">{feature}</th>
              <td className="bar-cell">
                <span
                  className={`bar ${value >= 0 ? "bar-pos" : "bar-neg"}`}
                  style={{ width: `${(Math.abs(value) / scale) * 50}%` }}
                />
              </td>
              <td className="num">{signed(value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Probabilities({ values, chosen }: { values: Record<string, number>; chosen: string }) {
  const rows = Object.entries(values).sort(([a], [b]) => a.localeCompare(b));
  return (
    <>
      <h3>Probability of each model</h3>
      <div className="probabilities" data-testid="probabilities" role="list">
        {rows.map(([model, p]) => (
          <div key={model} className="prob-row" role="listitem" aria-label={`${model} ${percent(p)}`}>
            <span className="prob-model">{model}</span>
            <span className="prob-track">
              <span
                className={`prob-bar ${model === chosen ? "prob-chosen" : ""}`}
                style={{ width: `${Math.max(p * 100, 0.5)}%` }}
              />
            </span>
            <span className="num">{percent(p)}</span>
          </div>
        ))}
      </div>
    </>
  );
}
