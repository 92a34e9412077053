import { describe, expect, it } from "vitest";
import { readSse, SseParser, type SseEvent } from "./sse";

// What the router sends: a route event, tokens (one with a newline and multi-byte text), done.
const ROUTER_STREAM =
  'event: route\ndata: {"model":"m1","host":"cpu-node-1"}\n\n' +
  'event: token\ndata: {"text":"Hé","index":0}\n\n' +
  'event: token\ndata: {"text":"llo\\n🌊","index":1}\n\n' +
  'event: done\ndata: {"finish_reason":"stop"}\n\n';
const EXPECTED: SseEvent[] = [
  { event: "route", data: '{"model":"m1","host":"cpu-node-1"}' },
  { event: "token", data: '{"text":"Hé","index":0}' },
  { event: "token", data: '{"text":"llo\\n🌊","index":1}' },
  { event: "done", data: '{"finish_reason":"stop"}' },
];

function parseChunks(chunks: string[]): SseEvent[] {
  const parser = new SseParser();
  return [...chunks.flatMap((c) => parser.feed(c)), ...parser.end()];
}

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function readAll(chunks: Uint8Array[]): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  for await (const event of readSse(streamOf(chunks))) events.push(event);
  return events;
}

describe("SseParser", () => {
  it("parses the router's stream in one piece", () => {
    expect(parseChunks([ROUTER_STREAM])).toEqual(EXPECTED);
  });

  it("gives the same events whichever two pieces the text arrives in", () => {
    for (let cut = 0; cut <= ROUTER_STREAM.length; cut++) {
      const pieces = [ROUTER_STREAM.slice(0, cut), ROUTER_STREAM.slice(cut)];
      expect(parseChunks(pieces), `cut at ${cut}`).toEqual(EXPECTED);
    }
  });

  it("gives the same events one character at a time", () => {
    expect(parseChunks([...ROUTER_STREAM])).toEqual(EXPECTED);
  });

  it("accepts CRLF and CR line ends, even with a chunk boundary between CR and LF", () => {
    for (const eol of ["\r\n", "\r"]) {
      const text = ROUTER_STREAM.replaceAll("\n\n", eol + eol).replace(/\n(?=data)/g, eol);
      for (let cut = 0; cut <= text.length; cut++) {
        const pieces = [text.slice(0, cut), text.slice(cut)];
        expect(parseChunks(pieces), `${JSON.stringify(eol)} cut at ${cut}`).toEqual(EXPECTED);
      }
    }
  });

  it("joins data lines, skips comments and unknown fields, takes the default event name", () => {
    const text = ": keep-alive\nid: 7\nretry: 100\ndata: a\ndata:b\ndata\n\n";
    expect(parseChunks([text])).toEqual([{ event: "message", data: "a\nb\n" }]);
  });

  it("drops an event whose blank line never came (a cut stream is not a complete one)", () => {
    expect(parseChunks(['event: token\ndata: {"text":"x"}\n'])).toEqual([]);
    expect(parseChunks(['event: done\ndata: {}'])).toEqual([]);
  });

  it("ignores a byte-order mark at the start", () => {
    expect(parseChunks(["\ufeffdata: x\n\n"])).toEqual([{ event: "message", data: "x" }]);
  });
});

describe("readSse", () => {
  const bytes = new TextEncoder().encode(ROUTER_STREAM);

  it("decodes UTF-8 split anywhere: two chunks at every byte offset", async () => {
    for (let cut = 0; cut <= bytes.length; cut++) {
      const events = await readAll([bytes.slice(0, cut), bytes.slice(cut)]);
      expect(events, `cut at byte ${cut}`).toEqual(EXPECTED);
    }
  });

  it("decodes one byte at a time", async () => {
    const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
    expect(await readAll(chunks)).toEqual(EXPECTED);
  });

  it("decodes random chunkings", async () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 200; round++) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; ) {
        const size = 1 + Math.floor(random() * 12);
        chunks.push(bytes.slice(at, at + size));
        at += size;
      }
      expect(await readAll(chunks), `round ${round}`).toEqual(EXPECTED);
    }
  });
});
