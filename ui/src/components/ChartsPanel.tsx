import { useCallback, useEffect, useState } from "react";
import { fetchBenchmarks, fetchFigures, isAbort } from "../api/client";
import type { BenchmarkCharts, Figure, Figures } from "../api/types";
import { duration, percent, rate } from "../format";
import { ErrorNotice } from "./ErrorNotice";

type Loaded<T> = { data: T } | { error: unknown } | null;

const REFRESH_MS = 15_000;

/** Committed benchmark plots and live figures from Prometheus (through the router). */
export function ChartsPanel() {
  const [plots, setPlots] = useState<Loaded<BenchmarkCharts>>(null);
  const [live, setLive] = useState<Loaded<Figures>>(null);

  const refresh = useCallback((signal?: AbortSignal) => {
    fetchFigures(signal)
      .then((data) => setLive({ data }))
      .catch((error: unknown) => isAbort(error) || setLive({ error }));
  }, []);

  useEffect(() => {
    const ctrl = new AbortController();
    fetchBenchmarks(ctrl.signal)
      .then((data) => setPlots({ data }))
      .catch((error: unknown) => isAbort(error) || setPlots({ error }));
    refresh(ctrl.signal);
    const timer = setInterval(() => refresh(ctrl.signal), REFRESH_MS);
    return () => {
      clearInterval(timer);
      ctrl.abort();
    };
  }, [refresh]);

  return (
    <section className="charts" data-testid="charts">
      <h2>Benchmarks</h2>
      <div className="live-head">
        <h3>Live (Prometheus, last 5 minutes)</h3>
        <button type="button" onClick={() => refresh()}>
          Refresh
        </button>
      </div>
      <LiveFigures loaded={live} />
      <h3>Committed benchmark plots</h3>
      <Plots loaded={plots} />
    </section>
  );
}

function LiveFigures({ loaded }: { loaded: Loaded<Figures> }) {
  if (loaded === null) return <p className="hint">Loading live figures…</p>;
  if ("error" in loaded) return <ErrorNotice error={loaded.error} testId="figures-error" />;
  return (
    <div className="figures" data-testid="figures">
      {loaded.data.figures.map((figure) => (
        <FigureCard key={figure.name} figure={figure} />
      ))}
    </div>
  );
}

function value(figure: Figure, v: number | null): string {
  if (v === null) return "no traffic";
  if (figure.unit === "s") return duration(v);
  if (figure.unit === "ratio") return percent(v);
  return `${rate(v)} ${figure.unit}`;
}

function FigureCard({ figure }: { figure: Figure }) {
  const max = Math.max(...figure.series.map((s) => s.value ?? 0), 1e-9);
  return (
    <figure className="figure" data-testid={`figure-${figure.name}`} title={figure.query}>
      <figcaption>{figure.title}</figcaption>
      {figure.series.length === 0 ? (
        <p className="hint">no data yet</p>
      ) : (
        figure.series.map((s, i) => (
          <div key={i} className="prob-row">
            <span className="prob-model">{s.labels.model ?? "all"}</span>
            <span className="prob-track">
              <span
                className="prob-bar"
                style={{ width: `${figure.unit === "ratio" ? (s.value ?? 0) * 100 : ((s.value ?? 0) / max) * 100}%` }}
              />
            </span>
            <span className="num">{value(figure, s.value)}</span>
          </div>
        ))
      )}
    </figure>
  );
}

function Plots({ loaded }: { loaded: Loaded<BenchmarkCharts> }) {
  if (loaded === null) return <p className="hint">Loading plots…</p>;
  if ("error" in loaded) return <ErrorNotice error={loaded.error} testId="plots-error" />;
  if (loaded.data.charts.length === 0) {
    return (
      <p className="hint" data-testid="plots-empty">
        No benchmark plots are committed yet ({loaded.data.folder}/*.png).
      </p>
    );
  }
  return (
    <div className="plots" data-testid="plots">
      {loaded.data.charts.map((chart) => (
        <figure key={chart.name} className="plot">
          <img src={chart.url} alt={chart.title} loading="lazy" />
          <figcaption>{chart.title}</figcaption>
        </figure>
      ))}
    </div>
  );
}
