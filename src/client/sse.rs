//! Reading a Server-Sent Events stream (`/api/tail`): lines in, one event out per blank
//! line. Only what the daemon sends is handled: `event`, `id`, `data` and comments.

use std::io::{BufRead, BufReader, Read};

#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

pub struct SseReader<R> {
    input: BufReader<R>,
    line: String,
}

impl<R: Read> SseReader<R> {
    pub fn new(input: R) -> SseReader<R> {
        SseReader {
            input: BufReader::with_capacity(64 << 10, input),
            line: String::new(),
        }
    }

    /// Whether more has arrived than was handed out (else the next read may wait).
    pub fn has_buffered(&self) -> bool {
        !self.input.buffer().is_empty()
    }

    /// The next event; `None` when the stream ends (the daemon went away).
    pub fn next_event(&mut self) -> std::io::Result<Option<SseEvent>> {
        let mut ev = SseEvent::default();
        let mut any = false;
        loop {
            self.line.clear();
            if self.input.read_line(&mut self.line)? == 0 {
                return Ok(None);
            }
            let line = self.line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if any {
                    if ev.event.is_empty() {
                        ev.event = "message".into();
                    }
                    return Ok(Some(ev));
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // keep-alive
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "event" => ev.event = value.to_string(),
                "id" => ev.id = Some(value.to_string()),
                "data" => {
                    if !ev.data.is_empty() {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_multiline_data() {
        let text = ": keep-alive\n\nevent: record\nid: 1.2.3.4\ndata: {\"a\":1}\n\n\
                    event: dropped\ndata: x\ndata: y\n\n:\n\ndata: plain\n\nevent: cut";
        let mut r = SseReader::new(text.as_bytes());
        let mut got = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            got.push(ev);
        }
        assert_eq!(
            got,
            [
                SseEvent {
                    event: "record".into(),
                    id: Some("1.2.3.4".into()),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "dropped".into(),
                    id: None,
                    data: "x\ny".into()
                },
                SseEvent {
                    event: "message".into(),
                    id: None,
                    data: "plain".into()
                },
            ]
        );
    }
}
