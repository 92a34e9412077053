/** Errors in plain words: what happened and what the reader can do about it. */
import { ApiError } from "./api/client";

export interface Explained {
  title: string;
  detail: string;
}

function seconds(n: number): string {
  return n === 1 ? "1 second" : `${n} seconds`;
}

export function explain(error: unknown): Explained {
  if (!(error instanceof ApiError)) {
    return { title: "Something went wrong in the page", detail: String(error) };
  }
  switch (error.kind) {
    case "rate_limited":
      return {
        title: "Too many requests",
        detail:
          error.retryAfterS !== undefined
            ? `The router limits how often you can ask. Try again in ${seconds(error.retryAfterS)}.`
            : "The router limits how often you can ask. Try again in a moment.",
      };
    case "unavailable":
      if (error.code === "no_healthy_backend") {
        return {
          title: "No model is available right now",
          detail: `Every model that could answer is down or failing (${error.message}). Try again in ${seconds(error.retryAfterS ?? 5)}.`,
        };
      }
      if (error.code === "prometheus_unavailable" || error.code === "prometheus_error") {
        return { title: "Live figures are unavailable", detail: error.message };
      }
      return {
        title: "The service is busy or unavailable",
        detail: `${error.message}. Try again in ${seconds(error.retryAfterS ?? 5)}.`,
      };
    case "unauthorized":
      return { title: "This router needs an API key", detail: error.message };
    case "invalid":
      return { title: "The request was not accepted", detail: error.message };
    case "network":
      return {
        title: "Network connection lost",
        detail: `${error.message} Check that the router is running (make up) and that you are online, then try again.`,
      };
    case "broken_stream":
      return {
        title: "The answer broke off",
        detail: `The model failed after it had started answering: ${error.message}`,
      };
    case "server":
      return { title: "The router hit an error", detail: error.message };
  }
}
