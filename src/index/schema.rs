//! The index schema, built in one place, with a struct of field handles so no other code
//! looks a field up by name (fast-field columns, which tantivy reads by name, use the
//! constants here).

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED,
    STRING,
};

pub const TS: &str = "ts";
pub const FILE_ORD: &str = "file_ord";
pub const OFFSET: &str = "offset";
pub const SUB: &str = "sub";
pub const SERVICE: &str = "service";

/// Values a document leaves out: nearly every record is a line of a program's stdout, and
/// a value stated in every document costs a term and a postings entry per line (~5% of
/// ingest's CPU for these two and `split`). An absent `stream` reads as `out`, an absent
/// `kind` as `line`, an absent `split` as false; a filter on a default value matches
/// every document without one of the other values, so documents written before, which
/// state it, match too.
pub const DEFAULT_STREAM: &str = "out";
pub const DEFAULT_KIND: &str = "line";

/// The `file_ord` of records read from `file`.
pub fn file_ord(file: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(file.as_bytes())
}

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// Microseconds since the epoch (fast, for ranges and ordering).
    pub ts: Field,
    pub ts_source: Field,
    pub service: Field,
    pub stream: Field,
    pub instance: Field,
    pub level: Field,
    pub kind: Field,
    pub message: Field,
    pub file: Field,
    /// A hash of the file path: orders records with equal timestamps by file, then offset.
    pub file_ord: Field,
    pub offset: Field,
    pub sub: Field,
    pub split: Field,
    /// Marker fields (PM2 bus events); absent on lines.
    pub event: Field,
    pub exit_code: Field,
    pub restart_count: Field,
    pub manual: Field,
}

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // Range filters on `ts` run on the fast column; no inverted index needed.
    let num = NumericOptions::default().set_fast().set_stored();
    // Positions are kept so phrase queries ("upstream timeout") work. No field norms:
    // hits are ordered by time, never by score, and they cost a byte per line.
    let message = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("default")
                .set_fieldnorms(false)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        ts: b.add_i64_field(TS, num.clone()),
        ts_source: b.add_text_field("ts_source", STORED),
        service: b.add_text_field(SERVICE, STRING | STORED | FAST),
        stream: b.add_text_field("stream", STRING | STORED),
        // `instance` and `file` are shown, never searched for: stored only, which spares
        // the indexing threads a term per line each.
        instance: b.add_u64_field("instance", STORED),
        level: b.add_text_field("level", STRING | STORED),
        kind: b.add_text_field("kind", STRING | STORED),
        message: b.add_text_field("message", message),
        file: b.add_text_field("file", STORED),
        file_ord: b.add_u64_field(FILE_ORD, FAST),
        offset: b.add_u64_field(OFFSET, FAST | STORED),
        sub: b.add_u64_field(SUB, FAST | STORED),
        split: b.add_bool_field("split", STORED),
        event: b.add_text_field("event", STRING | STORED),
        exit_code: b.add_i64_field("exit_code", STORED),
        restart_count: b.add_u64_field("restart_count", STORED),
        manual: b.add_bool_field("manual", STORED),
    };
    (b.build(), fields)
}
