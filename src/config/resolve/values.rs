//! Typed values of keys whose TOML type alone says too little: durations, sizes, string
//! lists, ranged integers. Each reports a bad value at its line and column.

use std::fmt::Display;
use std::time::Duration;

use super::context::{At, Checked, NoValue};
use crate::config::diag::Diagnostic;
use crate::config::units;

/// A duration string such as `"2s"` or `"200ms"`.
pub(super) fn duration(at: &At<'_, toml::Value>, diags: &mut Vec<Diagnostic>) -> Checked<Duration> {
    let parsed = match at.get() {
        toml::Value::String(s) => units::parse_duration(s),
        other => Err(format!(
            "expected a duration string such as \"2s\" or \"200ms\", found {}",
            other.type_str()
        )),
    };
    parsed
        .map_err(|e| diags.push(at.err(e)))
        .map_err(|()| NoValue)
}

/// A size such as `"128MiB"`, or a number of bytes.
pub(super) fn size(at: &At<'_, toml::Value>, diags: &mut Vec<Diagnostic>) -> Checked<u64> {
    let parsed = match at.get() {
        toml::Value::String(s) => units::parse_size(s),
        toml::Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        other => Err(format!(
            "expected a size such as \"128MiB\" or a number of bytes, found {}",
            other.type_str()
        )),
    };
    parsed
        .map_err(|e| diags.push(at.err(e)))
        .map_err(|()| NoValue)
}

/// An integer that `convert` accepts, else `message(value)` at the value.
pub(super) fn ranged<T, V: Copy + Display>(
    at: &At<'_, V>,
    convert: impl Fn(V) -> Option<T>,
    message: impl Fn(V) -> String,
    diags: &mut Vec<Diagnostic>,
) -> Checked<T> {
    convert(*at.get()).ok_or_else(|| {
        diags.push(at.err(message(*at.get())));
        NoValue
    })
}

/// A list of strings, as written.
pub(super) fn strings(at: Option<At<'_, Vec<toml::Spanned<String>>>>) -> Vec<String> {
    at.map(|a| a.get().iter().map(|s| s.get_ref().clone()).collect())
        .unwrap_or_default()
}
