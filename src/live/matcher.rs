//! The search query language applied to one record in memory. Live records are not in
//! the index yet, so a follow with `q=` cannot ask tantivy; this evaluates the same
//! parsed query (tantivy's grammar, words ANDed by default) with the same tokenizer, so
//! a live record matches exactly when the index would return it once committed.

use tantivy::query_grammar::{
    parse_query, Occur, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};
use tantivy::tokenizer::TextAnalyzer;

use crate::index::Hit;

pub struct QueryMatcher {
    ast: UserInputAst,
    analyzer: TextAnalyzer,
}

impl QueryMatcher {
    /// `analyzer` must be the message field's tokenizer (the index's `default`).
    pub fn new(q: &str, analyzer: TextAnalyzer) -> Result<QueryMatcher, String> {
        let ast = parse_query(q).map_err(|_| format!("cannot parse the query {q:?}"))?;
        Ok(QueryMatcher { ast, analyzer })
    }

    pub fn matches(&self, hit: &Hit) -> bool {
        let mut analyzer = self.analyzer.clone();
        let tokens = tokens(&mut analyzer, &hit.message);
        let mut doc = Doc {
            hit,
            tokens,
            analyzer,
        };
        doc.eval(&self.ast)
    }
}

struct Doc<'a> {
    hit: &'a Hit,
    tokens: Vec<String>,
    analyzer: TextAnalyzer,
}

impl Doc<'_> {
    fn eval(&mut self, ast: &UserInputAst) -> bool {
        match ast {
            UserInputAst::Boost(inner, _) => self.eval(inner),
            UserInputAst::Leaf(leaf) => self.leaf(leaf),
            UserInputAst::Clause(clauses) => {
                // Unmarked clauses are required: the query parser runs with conjunction
                // by default, as `/api/search` does.
                let mut any_should = false;
                let mut a_should_matched = false;
                for (occur, sub) in clauses {
                    match occur.unwrap_or(Occur::Must) {
                        Occur::Must => {
                            if !self.eval(sub) {
                                return false;
                            }
                        }
                        Occur::MustNot => {
                            if self.eval(sub) {
                                return false;
                            }
                        }
                        Occur::Should => {
                            any_should = true;
                            a_should_matched = a_should_matched || self.eval(sub);
                        }
                    }
                }
                let has_must = clauses
                    .iter()
                    .any(|(o, _)| o.unwrap_or(Occur::Must) == Occur::Must);
                // With a required clause the optional ones only rank; with none, one
                // of them must match; with only negative clauses everything else does.
                has_must || !any_should || a_should_matched
            }
        }
    }

    fn leaf(&mut self, leaf: &UserInputLeaf) -> bool {
        match leaf {
            UserInputLeaf::All => true,
            UserInputLeaf::Literal(lit) => self.literal(lit),
            UserInputLeaf::Set { field, elements } => elements.iter().any(|e| {
                self.literal(&UserInputLiteral {
                    field_name: field.clone(),
                    phrase: e.clone(),
                    delimiter: tantivy::query_grammar::Delimiter::None,
                    slop: 0,
                    prefix: false,
                })
            }),
            UserInputLeaf::Exists { field } => match field.as_str() {
                "message" => !self.tokens.is_empty(),
                f => self.keyword(f).is_some_and(|v| !v.is_empty()),
            },
            UserInputLeaf::Range {
                field,
                lower,
                upper,
            } => {
                let in_range = |v: &str| above(lower, v) && below(upper, v);
                match field.as_deref() {
                    None | Some("message") => self.tokens.iter().any(|t| in_range(t)),
                    Some(f) => self.keyword(f).is_some_and(in_range),
                }
            }
        }
    }

    fn literal(&mut self, lit: &UserInputLiteral) -> bool {
        match lit.field_name.as_deref() {
            None | Some("message") => {}
            Some(f) => {
                // Keyword fields hold their value untokenized: whole-value equality.
                return self.keyword(f).is_some_and(|v| {
                    if lit.prefix {
                        v.starts_with(&lit.phrase)
                    } else {
                        v == lit.phrase
                    }
                });
            }
        }
        let words = tokens(&mut self.analyzer, &lit.phrase);
        match words.as_slice() {
            [] => true,
            [word] if lit.prefix => self.tokens.iter().any(|t| t.starts_with(word.as_str())),
            [word] => self.tokens.iter().any(|t| t == word),
            _ => phrase_at(&self.tokens, &words, lit.slop, lit.prefix),
        }
    }

    /// The value of an untokenized field, as the index stores it.
    fn keyword(&self, field: &str) -> Option<&str> {
        let h = self.hit;
        match field {
            "service" => Some(&h.service),
            "stream" => Some(&h.stream),
            "kind" => Some(&h.kind),
            "file" => Some(&h.file),
            "ts_source" => Some(&h.ts_source),
            "level" => h.level.as_deref(),
            "event" => h.event.as_deref(),
            _ => None,
        }
    }
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(t) = stream.next() {
        out.push(t.text.clone());
    }
    out
}

/// The words in order, with at most `slop` other words in between in total; the last
/// word may be a prefix (`"upstream tim"*`).
fn phrase_at(tokens: &[String], words: &[String], slop: u32, last_prefix: bool) -> bool {
    let is = |t: &String, i: usize| {
        if last_prefix && i == words.len() - 1 {
            t.starts_with(words[i].as_str())
        } else {
            *t == words[i]
        }
    };
    (0..tokens.len()).any(|start| {
        if !is(&tokens[start], 0) {
            return false;
        }
        let mut pos = start;
        let mut gaps = 0u32;
        for i in 1..words.len() {
            let next = tokens[pos + 1..].iter().position(|t| is(t, i));
            match next {
                Some(skip) if gaps + skip as u32 <= slop => {
                    gaps += skip as u32;
                    pos += 1 + skip;
                }
                _ => return false,
            }
        }
        true
    })
}

fn above(bound: &UserInputBound, v: &str) -> bool {
    match bound {
        UserInputBound::Inclusive(b) => v >= b.as_str(),
        UserInputBound::Exclusive(b) => v > b.as_str(),
        UserInputBound::Unbounded => true,
    }
}

fn below(bound: &UserInputBound, v: &str) -> bool {
    match bound {
        UserInputBound::Inclusive(b) => v <= b.as_str(),
        UserInputBound::Exclusive(b) => v < b.as_str(),
        UserInputBound::Unbounded => true,
    }
}
