/** The router's types, as generated from its OpenAPI document (src/api/schema.ts). */
import type { components } from "./schema";

type Schemas = components["schemas"];

export type GenerateRequest = Schemas["RouterGenerateRequest"];
export type PreferBackend = NonNullable<GenerateRequest["prefer_backend"]>;
export type RouteEvent = Schemas["RouteEvent"];
export type TokenEvent = Schemas["TokenEvent"];
export type RouterStats = Schemas["RouterStats"];
export type ErrorEvent = Schemas["ErrorEvent"];
export type FallbackAttempt = Schemas["FallbackAttempt"];
export type LastRequestStats = Schemas["LastRequestStats"];
export type Figures = Schemas["Figures"];
export type Figure = Schemas["Figure"];
export type BenchmarkCharts = Schemas["BenchmarkCharts"];

export const PREFER_BACKENDS: readonly PreferBackend[] = ["cpu", "gpu", "auto"];
