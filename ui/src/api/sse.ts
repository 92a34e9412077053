/**
 * Server-Sent Events from a fetch() body, for POST requests (EventSource can only GET).
 *
 * The parser follows the WHATWG event-stream rules the router relies on: lines end with LF, CRLF
 * or CR; `event:` names the event, `data:` lines are joined with LF, a blank line dispatches,
 * `:` starts a comment, one space after the colon is dropped. Bytes may arrive split anywhere —
 * inside a field, between CR and LF, inside a UTF-8 character — and the events come out the same.
 */

export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private started = false;
  private eventName = "";
  private dataLines: string[] = [];
  private hasData = false;

  /** Feed decoded text; returns the events completed by it. */
  feed(text: string): SseEvent[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf("\r", start);
      const lf = this.buffer.indexOf("\n", start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (end === cr && end + 1 === this.buffer.length) break;
      const line = this.buffer.slice(start, end);
      start = end + (end === cr && this.buffer[end + 1] === "\n" ? 2 : 1);
      this.line(line, events);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The stream ended: a final CR still ends its line; an event without its blank line is
   * dropped (as the standard says), so a cut stream never looks complete. */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.buffer.endsWith("\r")) this.line(this.buffer.slice(0, -1), events);
    this.buffer = "";
    this.reset();
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === "") {
      if (this.hasData) {
        events.push({ event: this.eventName || "message", data: this.dataLines.join("\n") });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.eventName = value;
    else if (field === "data") {
      this.dataLines.push(value);
      this.hasData = true;
    }
    // id and retry mean nothing for a one-shot POST stream.
  }

  private reset(): void {
    this.eventName = "";
    this.dataLines = [];
    this.hasData = false;
  }
}

/** Every event of an SSE byte stream, as it arrives. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  const parser = new SseParser();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    finished = true;
    yield* parser.feed(decoder.decode());
    yield* parser.end();
  } finally {
    // A reader that stops early (an error event, an exception) closes the connection, so the
    // router sees the client leave and stops the generation.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
