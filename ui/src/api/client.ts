/** Calls to the router: the streaming /generate, and the small JSON endpoints the UI reads. */
import { readSse } from "./sse";
import type {
  BenchmarkCharts,
  ErrorEvent,
  Figures,
  GenerateRequest,
  LastRequestStats,
  RouteEvent,
  RouterStats,
  TokenEvent,
} from "./types";

export type ApiErrorKind =
  | "rate_limited"
  | "unavailable"
  | "unauthorized"
  | "invalid"
  | "network"
  | "broken_stream"
  | "server";

/** Something the router (or the way to it) could not do, with what the UI needs to say so. */
export class ApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

function kindOf(status: number): ApiErrorKind {
  if (status === 429) return "rate_limited";
  if (status === 401) return "unauthorized";
  if (status === 502 || status === 503 || status === 504) return "unavailable";
  if (status >= 400 && status < 500) return "invalid";
  return "server";
}

/** The ApiError for a non-2xx answer (the router's bodies: {"error": {"message", "code"}}). */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let message = `HTTP ${response.status} ${response.statusText}`.trim();
  let code: string | undefined;
  try {
    const body = (await response.json()) as { error?: { message?: string; code?: string } };
    if (body.error?.message) message = body.error.message;
    code = body.error?.code;
  } catch {
    // not JSON (a proxy's page): the status line says enough
  }
  const header = response.headers.get("Retry-After");
  const retry = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
  return new ApiError(kindOf(response.status), message, response.status, code, retry);
}

function networkError(): ApiError {
  return new ApiError("network", "The router could not be reached.");
}

export interface StreamHandlers {
  onRoute(route: RouteEvent): void;
  onToken(token: TokenEvent): void;
  onDone(stats: RouterStats): void;
}

/**
 * POST /generate and hand each event to `handlers` as it arrives. Resolves after `done`; rejects
 * with an ApiError (or the AbortError of `signal`: aborting closes the connection, which makes
 * the router cancel the generation).
 */
export async function streamGenerate(
  request: GenerateRequest,
  handlers: StreamHandlers,
  signal: AbortSignal,
): Promise<void> {
  let response: Response;
  try {
    response = await fetch("/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ ...request, stream: true }),
      signal,
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw networkError();
  }
  if (!response.ok) throw await errorFromResponse(response);
  if (response.body === null) throw new ApiError("server", "The router sent no stream.");
  let complete = false;
  try {
    for await (const event of readSse(response.body)) {
      const data: unknown = JSON.parse(event.data);
      if (event.event === "route") handlers.onRoute(data as RouteEvent);
      else if (event.event === "token") handlers.onToken(data as TokenEvent);
      else if (event.event === "done") {
        complete = true;
        handlers.onDone(data as RouterStats);
      } else if (event.event === "error") {
        const { message, code } = data as ErrorEvent;
        throw new ApiError("broken_stream", message, undefined, code);
      }
    }
  } catch (error) {
    if (isAbort(error) || error instanceof ApiError) throw error;
    if (signal.aborted) throw new DOMException("stopped", "AbortError");
    throw new ApiError("network", "The connection to the router was lost mid-answer.");
  }
  if (!complete) {
    throw new ApiError("network", "The connection to the router was lost mid-answer.");
  }
}

/** GET a JSON endpoint of the router. */
export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, signal });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw networkError();
  }
  if (!response.ok) throw await errorFromResponse(response);
  return (await response.json()) as T;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The router's stats for `requestId`. The router records them just after it sends `done`, so a
 * read right after may still see the previous request: read again, briefly.
 */
export async function lastRequestStats(
  requestId: string,
  { attempts = 10, delayMs = 100 } = {},
): Promise<LastRequestStats> {
  for (let attempt = 1; ; attempt++) {
    const stats = await getJson<LastRequestStats>("/last_request_stats").catch(
      (error: unknown) => {
        if (error instanceof ApiError && error.status === 404 && attempt < attempts) return null;
        throw error;
      },
    );
    if (stats?.request_id === requestId) return stats;
    if (attempt >= attempts) {
      throw new ApiError("server", "The router did not report this request's stats.");
    }
    await sleep(delayMs);
  }
}

export const fetchFigures = (signal?: AbortSignal) => getJson<Figures>("/ui/figures", signal);
export const fetchBenchmarks = (signal?: AbortSignal) =>
  getJson<BenchmarkCharts>("/ui/benchmarks", signal);
