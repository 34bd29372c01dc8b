//! A Server-Sent Events parser for provider streams, fed bytes as they arrive.
//!
//! It follows the WHATWG event-stream rules that providers actually exercise: lines end in
//! LF, CRLF or a lone CR (a CRLF split across two reads is still one line end), `:` starts a
//! comment (keep-alives), several `data:` lines join with `\n`, a blank line dispatches the
//! event, and a leading byte-order mark is skipped. Bytes are buffered until a line is
//! complete, so an event or a UTF-8 character split across TCP reads comes out whole.
//!
//! One deliberate leniency: at the end of the input an event that lacks its closing blank
//! line is still dispatched (see [`SseParser::finish`]), since a provider's last event is the
//! one that carries the finish reason or usage.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when the server named the event (Anthropic does, OpenAI does not).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The parser's state between reads.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current, incomplete line.
    line: Vec<u8>,
    /// The previous read ended in CR, so an LF at the start of the next one belongs to it.
    after_cr: bool,
    /// Whether the first line has been seen (for the byte-order mark).
    started: bool,
    /// The event being assembled.
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds one read's bytes and appends every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes
            .iter()
            .position(|&byte| byte == b'\n' || byte == b'\r')
        {
            let (line, rest) = bytes.split_at(end);
            if self.line.is_empty() {
                // The common case: the whole line is in this read, so it is not copied.
                self.process_line(line, out);
            } else {
                let mut joined = std::mem::take(&mut self.line);
                joined.extend_from_slice(line);
                self.process_line(&joined, out);
                joined.clear();
                self.line = joined;
            }
            bytes = &rest[1..];
            if rest[0] == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
    }

    /// Ends the input: a last line without its line end is processed, and an event without
    /// its blank line is dispatched rather than dropped.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, out);
        }
        self.dispatch(out);
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let mut line = line;
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix("\u{feff}".as_bytes()) {
                line = rest;
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(b":") {
            return;
        }
        let (field, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id` and `retry` serve reconnection, which a one-shot completion never does.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: text.to_owned(),
        }
    }

    /// Parses `input` fed in pieces of `size` bytes, then finished.
    fn parse_in_pieces(input: &[u8], size: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(size) {
            parser.push(piece, &mut out);
        }
        parser.finish(&mut out);
        out
    }

    #[test]
    fn any_chunk_boundary_gives_the_same_events() {
        let input = "data: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: ping\ndata: {}\n\n\
                     data: héllo wörld\r\n\r\ndata: [DONE]\n\n";
        let expected = vec![
            data("{\"a\":1}"),
            SseEvent {
                event: Some("ping".to_owned()),
                data: "{}".to_owned(),
            },
            data("héllo wörld"),
            data("[DONE]"),
        ];
        for size in 1..=input.len() {
            assert_eq!(
                parse_in_pieces(input.as_bytes(), size),
                expected,
                "size {size}"
            );
        }
    }

    #[test]
    fn crlf_split_between_reads_is_one_line_end() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.push(b"data: one\r", &mut out);
        assert!(out.is_empty());
        // The LF completes the CR; the next CR LF is the blank line.
        parser.push(b"\n\r\n", &mut out);
        assert_eq!(out, vec![data("one")]);
    }

    #[test]
    fn lone_cr_ends_lines() {
        assert_eq!(
            parse_in_pieces(b"data: a\rdata: b\r\rdata: c\r\r", 64),
            vec![data("a\nb"), data("c")]
        );
    }

    #[test]
    fn multi_line_data_joins_with_newlines() {
        assert_eq!(
            parse_in_pieces(b"data: first\ndata:second\ndata\ndata:  indented\n\n", 5),
            vec![data("first\nsecond\n\n indented")]
        );
    }

    #[test]
    fn comments_and_other_fields_are_ignored() {
        assert_eq!(
            parse_in_pieces(b": hello\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n:\n\n", 3),
            vec![data("x")]
        );
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        // An `event:` line alone is reset by the blank line and does not leak into the next.
        assert_eq!(
            parse_in_pieces(b"event: ping\n\ndata: x\n\n", 4),
            vec![data("x")]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped_and_utf8_split_across_reads_survives() {
        let input = "\u{feff}data: 你好\n\n";
        assert_eq!(parse_in_pieces(input.as_bytes(), 1), vec![data("你好")]);
    }

    #[test]
    fn an_unterminated_last_event_is_dispatched_at_the_end() {
        assert_eq!(
            parse_in_pieces(b"data: a\n\ndata: b", 2),
            vec![data("a"), data("b")]
        );
        assert_eq!(parse_in_pieces(b"data: a\n\n: bye", 2), vec![data("a")]);
    }
}
