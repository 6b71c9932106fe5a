//! Human-friendly units in the configuration file: durations (`"250ms"`, `"30s"`,
//! `"5m"`, `"1h"`: the parser shared with the mock, in `backstop-core`) and byte sizes (`"10MB"`, `"512KiB"`).

pub use backstop_core::duration::parse_duration;

/// Parses a byte size: a plain integer, or a number with `B`, `KB`, `MB`, `GB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. \"10MB\" or \"512KiB\""))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert!(parse_size("10XB").is_err());
    }
}
