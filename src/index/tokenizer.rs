//! The message field's tokenizer: tantivy's `default` (split on every character that is
//! not alphanumeric, drop tokens of 40 bytes or more, lowercase) in one pass over the
//! bytes for ASCII text, which most log lines are. It is registered as `default`, so the
//! index, the query parser and the live matcher keep using one tokenizer and an index
//! written before it is read unchanged: its tokens, offsets and positions are the same.

use tantivy::tokenizer::{
    BoxTokenStream, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};

/// tantivy's `default` drops tokens of this many bytes or more (`RemoveLongFilter`).
const LONG_TOKEN_BYTES: usize = 40;

/// Registered as `default` on the timeline's index.
#[derive(Clone)]
pub struct MessageTokenizer {
    token: Token,
    /// tantivy's own pipeline, for text that is not all ASCII (Unicode letters and
    /// digits, Unicode lowercasing).
    other: TextAnalyzer,
}

impl MessageTokenizer {
    pub fn new() -> MessageTokenizer {
        MessageTokenizer {
            token: Token::default(),
            other: tantivy_default(),
        }
    }
}

impl Default for MessageTokenizer {
    fn default() -> Self {
        MessageTokenizer::new()
    }
}

/// The pipeline tantivy registers as `default`.
fn tantivy_default() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(LONG_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}

impl Tokenizer for MessageTokenizer {
    type TokenStream<'a> = MessageTokens<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MessageTokens<'a> {
        if !text.is_ascii() {
            return MessageTokens::Other(self.other.token_stream(text));
        }
        self.token.reset();
        MessageTokens::Ascii(AsciiTokens {
            text,
            at: 0,
            token: &mut self.token,
        })
    }
}

pub enum MessageTokens<'a> {
    Ascii(AsciiTokens<'a>),
    Other(BoxTokenStream<'a>),
}

impl TokenStream for MessageTokens<'_> {
    fn advance(&mut self) -> bool {
        match self {
            MessageTokens::Ascii(t) => t.advance(),
            MessageTokens::Other(t) => t.advance(),
        }
    }

    fn token(&self) -> &Token {
        match self {
            MessageTokens::Ascii(t) => t.token,
            MessageTokens::Other(t) => t.token(),
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self {
            MessageTokens::Ascii(t) => t.token,
            MessageTokens::Other(t) => t.token_mut(),
        }
    }
}

/// Tokens of an all-ASCII text: runs of `[0-9A-Za-z]`, lowercased.
pub struct AsciiTokens<'a> {
    text: &'a str,
    /// Where the scan goes on.
    at: usize,
    token: &'a mut Token,
}

impl AsciiTokens<'_> {
    fn advance(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        loop {
            let Some(skip) = bytes[self.at..]
                .iter()
                .position(|b| b.is_ascii_alphanumeric())
            else {
                self.at = bytes.len();
                return false;
            };
            let from = self.at + skip;
            let to = bytes[from..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .map_or(bytes.len(), |n| from + n);
            self.at = to;
            // A dropped long token still takes its position, as in tantivy's pipeline
            // (the filter sits after the tokenizer that numbers them), so phrases
            // across it do not match as if it were not there.
            self.token.position = self.token.position.wrapping_add(1);
            if to - from >= LONG_TOKEN_BYTES {
                continue;
            }
            self.token.offset_from = from;
            self.token.offset_to = to;
            self.token.text.clear();
            self.token.text.push_str(&self.text[from..to]);
            self.token.text.make_ascii_lowercase();
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut out = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        out
    }

    fn ours() -> TextAnalyzer {
        TextAnalyzer::from(MessageTokenizer::new())
    }

    #[test]
    fn tokens_positions_and_offsets_are_tantivys() {
        let long = "x".repeat(LONG_TOKEN_BYTES);
        let just_short = "y".repeat(LONG_TOKEN_BYTES - 1);
        let texts = [
            String::new(),
            "   ...  ".into(),
            "GET /api/Users/42 200 12ms req=AbC123".into(),
            "ERROR upstream timeout after 30000ms".into(),
            format!("before {long} after {just_short} end"),
            long.clone(),
            "tabs\tand\r\nnewlines\x00nul_under-score".into(),
            "Größe ÜBER 9000 ünd café".into(),
            "ascii then ΣΊΣΥΦΟΣ".into(),
        ];
        for text in &texts {
            assert_eq!(
                tokens(ours(), text),
                tokens(tantivy_default(), text),
                "{text:?}"
            );
        }
        assert_eq!(
            tokens(ours(), &format!("a {long} b")),
            [("a".into(), 0, 0, 1), ("b".into(), 2, 43, 44)],
            "a dropped long token keeps its position"
        );
    }

    /// What the README promises about words, through a real index and `search`.
    #[test]
    fn words_are_found_as_the_readme_says() {
        use crate::index::search::sorted_messages;
        use crate::index::writer::index_for_tests;
        use crate::index::Timeline;
        use crate::record::Record;

        let dir = tempfile::TempDir::new().unwrap();
        let timeline = Timeline::open(dir.path()).unwrap();
        let t0 = chrono::DateTime::<chrono::Utc>::from_timestamp(1_772_000_000, 0).unwrap();
        let long = "ab12".repeat(10);
        let lines = [
            "req-42 done".to_string(),
            "req_42 done".into(),
            "REQ 42 Done".into(),
            "42 req done".into(),
            "upstream TIMEOUT after 3s".into(),
            format!("blob {long} end"),
            "Größe überschritten".into(),
        ];
        let records = (0..lines.len())
            .map(|i| Record::test_line("api", t0, &lines[i], i as u64))
            .collect();
        index_for_tests(&timeline, records);
        timeline.reader.reload().unwrap();
        let found = |q: &str| sorted_messages(&timeline, q);
        assert_eq!(
            found("req-42"),
            ["REQ 42 Done", "req-42 done", "req_42 done"],
            "a hyphenated word is a phrase, in any case"
        );
        assert_eq!(found("Timeout"), ["upstream TIMEOUT after 3s"]);
        assert_eq!(found(&long), Vec::<String>::new(), "40 bytes: not indexed");
        assert_eq!(
            found("\"blob end\""),
            Vec::<String>::new(),
            "the long word keeps its place between them"
        );
        assert_eq!(found("blob"), [format!("blob {long} end")]);
        assert_eq!(found("GRÖSSE"), Vec::<String>::new(), "no folding of ß");
        assert_eq!(
            found("größe"),
            ["Größe überschritten"],
            "Unicode lowercasing"
        );
    }

    #[test]
    fn the_same_as_tantivys_on_random_text() {
        // ASCII letters, digits and separators, some in runs long enough to be dropped;
        // one text in eight also holds a non-ASCII letter (the other path).
        let alphabet: Vec<char> = "aZ09 ._-=/:\t\"".chars().collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut stream = MessageTokenizer::new();
        for _ in 0..2_000 {
            let len = (next() % 200) as usize;
            let mut text = String::new();
            while text.len() < len {
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                let run = if next() % 8 == 0 { 36 + next() % 8 } else { 1 };
                (0..run).for_each(|_| text.push(c));
            }
            if next() % 8 == 0 {
                text.push_str("é9");
            }
            assert_eq!(
                tokens(ours(), &text),
                tokens(tantivy_default(), &text),
                "{text:?}"
            );
            // The tokenizer is reused between texts, as the indexer reuses it.
            let mut s = stream.token_stream(&text);
            let mut n = 0;
            while s.advance() {
                n += 1;
            }
            assert_eq!(n, tokens(tantivy_default(), &text).len());
        }
    }
}
