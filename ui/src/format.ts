/** Numbers as people read them. */

export function duration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  return `${seconds.toFixed(2)} s`;
}

export function percent(ratio: number): string {
  return `${Math.round(ratio * 100)}%`;
}

export function rate(value: number): string {
  if (value >= 100) return value.toFixed(0);
  return value >= 1 || value === 0 ? value.toFixed(1) : value.toPrecision(2); // 0.031, not 0.0
}

export function signed(value: number): string {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(2)}`;
}

const REASONS: Record<string, string> = {
  low_confidence: "the policy was unsure, so a bigger model answered",
  connect: "could not connect",
  timeout: "timed out",
  first_token_timeout: "no first token in time",
};

/** A fallback reason (a code such as http_500) in words. */
export function reason(code: string): string {
  if (REASONS[code]) return REASONS[code];
  const http = /^http_(\d{3})$/.exec(code);
  return http ? `answered HTTP ${http[1]}` : code.replaceAll("_", " ");
}
