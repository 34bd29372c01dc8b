// A persona's reply as it grows. Two sources tell its text: the SSE stream of
// `GET {mount}/messages/<id>/stream` (`delta` events `{offset, text}`, offsets in UTF-8
// bytes, then `done`) and the LiveQuery updates of the Message (its `content`, written every
// 75 ms or so). `ReplyText` merges both without ever showing text twice or going backwards;
// `SseParser` cuts a byte stream into events. Pure, so tested without a browser.

const encoder = new TextEncoder();

export function byteLength(text) {
  return encoder.encode(text).length;
}

/** The text of one reply, from deltas and snapshots in any order. */
export class ReplyText {
  constructor(text = '') {
    this.text = text;
    this.bytes = byteLength(text);
    this.final = false;
  }

  /**
   * A `delta` event: appended when it starts at or before the end of what is known (the
   * part already known is skipped); a delta past the end (a gap) is ignored, the next
   * snapshot fills it. True when the text changed.
   */
  applyDelta({ offset, text }) {
    if (this.final || typeof text !== 'string' || !Number.isInteger(offset) || offset < 0) return false;
    const end = offset + byteLength(text);
    if (offset > this.bytes || end <= this.bytes) return false;
    const skip = this.bytes - offset;
    const fresh = encoder.encode(text).slice(skip);
    this.text += new TextDecoder().decode(fresh);
    this.bytes = end;
    return true;
  }

  /**
   * A snapshot of the stored message (`content`, `status`): a longer text replaces a
   * shorter one while streaming; once the message is no longer `streaming`, its stored
   * content is the final word. True when the text changed.
   */
  applySnapshot(content, status) {
    const text = typeof content === 'string' ? content : '';
    if (status && status !== 'streaming') {
      const changed = text !== this.text || !this.final;
      this.text = text;
      this.bytes = byteLength(text);
      this.final = true;
      return changed;
    }
    if (this.final) return false;
    const bytes = byteLength(text);
    if (bytes <= this.bytes) return false;
    this.text = text;
    this.bytes = bytes;
    return true;
  }
}

/** Cuts Server-Sent Events out of text chunks: `push(chunk)` → `[{event, data, id}]`. */
export class SseParser {
  constructor() {
    this.buffer = '';
  }

  push(chunk) {
    this.buffer += chunk.replace(/\r\n?/g, '\n');
    const events = [];
    let end;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event = { event: 'message', data: '', id: null };
      const data = [];
      for (const line of block.split('\n')) {
        if (!line || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') event.id = value;
      }
      if (!data.length && event.event === 'message') continue;
      event.data = data.join('\n');
      events.push(event);
    }
    return events;
  }
}
