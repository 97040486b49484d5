//! Query-string parsing that says what is wrong: unknown parameters, repeated ones that
//! may appear once, and values that do not parse are all 400s naming the parameter.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::ApiError;
use crate::units::parse_time_expr;

pub struct Params {
    values: HashMap<String, Vec<String>>,
}

impl Params {
    /// Parses `raw`, refusing parameters not in `known`. Empty values count as absent
    /// (`?q=&service=` is what an empty form sends).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !known.contains(&k.as_ref()) {
                let expected = match known {
                    [] => "this route takes none".to_string(),
                    _ => format!("known: {}", known.join(", ")),
                };
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter \"{k}\" ({expected})"
                )));
            }
            if v.is_empty() {
                continue;
            }
            values
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        Ok(Params { values })
    }

    /// A parameter that may appear at most once.
    pub fn one(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.values.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([v]) => Ok(Some(v)),
            Some(_) => Err(ApiError::BadRequest(format!(
                "parameter \"{name}\" may be given only once"
            ))),
        }
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// Parses a single parameter with `parse`, whose error becomes the 400's sentence.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.one(name)? {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .map_err(|e| ApiError::BadRequest(format!("parameter \"{name}\": {e}"))),
        }
    }

    /// `limit`: a positive number, capped at `max` (a bigger one is not an error).
    pub fn limit(&self, max: usize) -> Result<Option<usize>, ApiError> {
        self.parsed("limit", |v| match v.parse::<usize>() {
            Ok(0) => Err("must be at least 1".to_string()),
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err(format!("\"{v}\" is not a number")),
        })
    }

    /// `since` and `until` (RFC 3339, `90s`, `10 min ago` ...), `since` not after `until`.
    pub fn time_range(&self, now: DateTime<Utc>) -> Result<TimeRange, ApiError> {
        let since = self.parsed("since", |v| parse_time_expr(v, now))?;
        let until = self.parsed("until", |v| parse_time_expr(v, now))?;
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(ApiError::BadRequest(
                    "parameter \"since\" is later than \"until\"".into(),
                ));
            }
        }
        Ok((since, until))
    }
}

/// `(since, until)`, each optional.
pub type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);
