//! Durations (`"1m 30s"`, `"200ms"`) and byte sizes (`"128MiB"`, `"1G"`, `4096`), and the
//! convention of the keys that switch a feature off with zero (`timeout = "0s"`,
//! `verify_interval = "0s"`, `big_file.threshold = 0`).

use std::time::Duration;

/// The longest delay accepted: anything longer is almost surely a typo, and huge values
/// overflow `Instant` arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `None` for zero ("off"), else the value: the one reading of a zero timeout, interval or
/// threshold.
pub fn off_if_zero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

/// Parses a humantime duration such as `"0s"`, `"200ms"`, `"1m 30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?}: {e} (examples: \"0s\", \"200ms\", \"2s\", \"1m 30s\")")
    })?;
    if d > MAX_DURATION {
        return Err(format!("duration {s:?} is longer than one year"));
    }
    Ok(d)
}

/// Parses a byte size: a plain number of bytes, or a number with a unit
/// (`K`/`KB` = 1000, `KiB` = 1024, up to `T`/`TiB`; case-insensitive; a bare `K`, `M`, `G`, `T`
/// means the binary unit, as in rsync and most admin tools).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number such as \"128MiB\""))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_off() {
        assert_eq!(off_if_zero(Duration::ZERO), None);
        assert_eq!(
            off_if_zero(Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(off_if_zero(0u64), None);
        assert_eq!(off_if_zero(4096u64), Some(4096));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1000000h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5 KiB"), Ok(1536));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1e300 TiB").is_err());
    }
}
