//! A record as tantivy reads it to index and store: the record itself, moved into the
//! writer, with its fields read in place. Building a `TantivyDocument` instead copied
//! every line's text once more on the way in.

use tantivy::schema::document::{Document, ReferenceValue, ReferenceValueLeaf, Value};
use tantivy::schema::Field;

use super::schema::{self, Fields};
use crate::record::Record;

/// Most fields a record fills (every field of the schema).
const MAX_FIELDS: usize = 17;

/// Boxed: tantivy's document channel is recreated at every commit with room for
/// 10,000 batches of up to four documents, each slot the size of the document, so a
/// record by value (about 250 bytes with the field handles) made it ~10 MB; a box
/// makes it a pointer.
pub struct RecordDoc(Box<Inner>);

struct Inner {
    fields: Fields,
    rec: Record,
    /// `schema::file_ord` of the record's file, hashed once: tantivy reads the fields
    /// several times per document (postings, columns, store).
    file_ord: u64,
}

impl RecordDoc {
    pub fn new(fields: Fields, rec: Record) -> RecordDoc {
        let file_ord = schema::file_ord(&rec.file);
        RecordDoc(Box::new(Inner {
            fields,
            rec,
            file_ord,
        }))
    }
}

/// One field's value: always a single leaf (no arrays or objects in this schema).
#[derive(Clone, Debug)]
pub struct Leaf<'a>(ReferenceValueLeaf<'a>);

impl<'a> Value<'a> for Leaf<'a> {
    type ArrayIter = std::iter::Empty<Leaf<'a>>;
    type ObjectIter = std::iter::Empty<(&'a str, Leaf<'a>)>;

    fn as_value(&self) -> ReferenceValue<'a, Self> {
        self.0.clone().into()
    }
}

pub type FieldValues<'a> =
    std::iter::Flatten<std::array::IntoIter<Option<(Field, Leaf<'a>)>, MAX_FIELDS>>;

impl Document for RecordDoc {
    type Value<'a> = Leaf<'a>;
    type FieldsValuesIter<'a> = FieldValues<'a>;

    fn iter_fields_and_values(&self) -> FieldValues<'_> {
        use ReferenceValueLeaf::{Bool, Str, I64, U64};
        let (f, r) = (&self.0.fields, &self.0.rec);
        let marker = r.marker.as_ref();
        let v = |field, leaf| Some((field, Leaf(leaf)));
        [
            v(f.ts, I64(r.ts.timestamp_micros())),
            v(f.ts_source, Str(r.ts_source.as_str())),
            v(f.service, Str(&r.service)),
            // Defaults are left out (schema::DEFAULT_STREAM and the rest).
            (r.stream.as_str() != schema::DEFAULT_STREAM)
                .then(|| (f.stream, Leaf(Str(r.stream.as_str())))),
            r.instance.and_then(|i| v(f.instance, U64(u64::from(i)))),
            r.level.and_then(|l| v(f.level, Str(l.as_str()))),
            (r.kind.as_str() != schema::DEFAULT_KIND).then(|| (f.kind, Leaf(Str(r.kind.as_str())))),
            v(f.message, Str(&r.message)),
            v(f.file, Str(&r.file)),
            v(f.file_ord, U64(self.0.file_ord)),
            v(f.offset, U64(r.offset)),
            v(f.sub, U64(u64::from(r.sub))),
            r.split.then_some((f.split, Leaf(Bool(true)))),
            marker.and_then(|m| v(f.event, Str(&m.event))),
            marker
                .and_then(|m| m.exit_code)
                .and_then(|c| v(f.exit_code, I64(c))),
            marker
                .and_then(|m| m.restart_count)
                .and_then(|n| v(f.restart_count, U64(n))),
            marker
                .and_then(|m| m.manual)
                .and_then(|b| v(f.manual, Bool(b))),
        ]
        .into_iter()
        .flatten()
    }
}
