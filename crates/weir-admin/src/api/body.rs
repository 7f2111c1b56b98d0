//! The runtime API's request body: JSON in, a typed change out.
//!
//! A pure function of the bytes (no I/O, no state), so it is fuzzed as it stands
//! (`fuzz/fuzz_targets/admin_body.rs`) and its corpus is replayed on stable.
//! `{"state": "ready"|"drain"|"maint", "weight": 1..256}`: either field, at least one;
//! anything else (an unknown field, a wrong type, a weight out of range, trailing bytes)
//! is refused with a message the 400 answer carries.

use serde::Deserialize;
use weir_balance::strategy::MAX_WEIGHT;
use weir_balance::AdminMode;

/// The most bytes a body may have; a change is a few dozen.
pub const MAX_BODY_BYTES: usize = 1024;

/// What one request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The new admin mode, if given.
    pub state: Option<AdminMode>,
    /// The new weight override (`1..=256`), if given.
    pub weight: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChange {
    state: Option<RawState>,
    weight: Option<serde_json::Number>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawState {
    Ready,
    Drain,
    Maint,
}

/// Parses a request body.
///
/// # Errors
///
/// A message for the client: not JSON, not an object of the two known fields, neither
/// field given, an unknown state, or a weight that is not an integer in `1..=256`.
pub fn parse_change(body: &[u8]) -> Result<Change, String> {
    if body.len() > MAX_BODY_BYTES {
        return Err(format!("body over {MAX_BODY_BYTES} bytes"));
    }
    let raw: RawChange = serde_json::from_slice(body).map_err(|e| {
        format!(
            "expected {{\"state\": \"ready\"|\"drain\"|\"maint\", \"weight\": 1..{MAX_WEIGHT}}}: {e}"
        )
    })?;
    let weight = match raw.weight {
        None => None,
        Some(n) => match n.as_u64().and_then(|w| u32::try_from(w).ok()) {
            Some(w) if (1..=MAX_WEIGHT).contains(&w) => Some(w),
            _ => {
                return Err(format!(
                    "weight must be an integer from 1 to {MAX_WEIGHT}, got {n}"
                ))
            }
        },
    };
    let state = raw.state.map(|s| match s {
        RawState::Ready => AdminMode::Ready,
        RawState::Drain => AdminMode::Drain,
        RawState::Maint => AdminMode::Maint,
    });
    if state.is_none() && weight.is_none() {
        return Err("give at least one of \"state\" and \"weight\"".to_owned());
    }
    Ok(Change { state, weight })
}

/// The fuzz target's body: parsing never panics, and what it accepts is in range and
/// survives a round trip through its own JSON.
/// Only built for the fuzz targets (`fuzzing` feature) and this crate's tests.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub fn fuzz_one(body: &[u8]) {
    let Ok(change) = parse_change(body) else {
        return;
    };
    assert!(change.state.is_some() || change.weight.is_some());
    assert!(change.weight.is_none_or(|w| (1..=MAX_WEIGHT).contains(&w)));
    let mut again = String::from("{");
    if let Some(s) = change.state {
        again.push_str(&format!("\"state\":\"{}\"", s.as_str()));
    }
    if let Some(w) = change.weight {
        if change.state.is_some() {
            again.push(',');
        }
        again.push_str(&format!("\"weight\":{w}"));
    }
    again.push('}');
    assert_eq!(parse_change(again.as_bytes()), Ok(change), "{again}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_either_field_or_both() {
        let ok = |s: &str| parse_change(s.as_bytes()).expect(s);
        assert_eq!(ok(r#"{"state":"drain"}"#).state, Some(AdminMode::Drain));
        assert_eq!(ok(r#"{"weight":256}"#).weight, Some(256));
        let both = ok(r#" {"state":"maint","weight":1} "#);
        assert_eq!((both.state, both.weight), (Some(AdminMode::Maint), Some(1)));
        assert_eq!(ok(r#"{"state":"ready","weight":null}"#).weight, None);
    }

    #[test]
    fn refuses_what_is_not_a_change() {
        for bad in [
            "",
            "{}",
            "[]",
            "null",
            r#"{"state":"up"}"#,
            r#"{"state":"DRAIN"}"#,
            r#"{"weight":0}"#,
            r#"{"weight":257}"#,
            r#"{"weight":-1}"#,
            r#"{"weight":1.5}"#,
            r#"{"weight":"3"}"#,
            r#"{"weight":18446744073709551617}"#,
            r#"{"state":"drain","extra":1}"#,
            r#"{"state":"drain"} x"#,
            r#"{"state":"drain","state":"maint"}"#,
        ] {
            assert!(parse_change(bad.as_bytes()).is_err(), "{bad:?} accepted");
        }
        let long = format!(r#"{{"state":"drain"{}}}"#, " ".repeat(MAX_BODY_BYTES));
        assert!(parse_change(long.as_bytes()).is_err());
    }

    /// `fuzz/corpus/admin_body`, replayed on stable (the fuzz target is `fuzz_one`).
    #[test]
    fn admin_body_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/admin_body");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus directory") {
            let bytes =
                std::fs::read(entry.expect("a corpus entry").path()).expect("a corpus file");
            fuzz_one(&bytes);
            n += 1;
        }
        assert!(n >= 10, "only {n} corpus files in {dir:?}");
    }
}
