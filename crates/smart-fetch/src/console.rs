//! What the user sees on stdout: rule lines, the done line, human sizes and durations, thousands
//! separators (docs/cli.md#console-output). Pure formatting: what is printed, and where, is
//! `report`'s business.

/// Width of the rule line: the terminal's (from `COLUMNS`, which shells export) when stdout
/// is a terminal (`stdout_is_terminal`, which the reporter asks: it owns stdout), else 80
/// like the Python tool's `rich` console.
pub fn terminal_width(stdout_is_terminal: bool) -> usize {
    if !stdout_is_terminal {
        return 80;
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
        .unwrap_or(80)
}

/// The rule line text for a given width.
pub fn rule_line(width: usize) -> String {
    "─".repeat(width)
}

/// Python's `f"{x:.1f}".rstrip("0").rstrip(".")`.
fn rounded(x: f64) -> String {
    let text = format!("{x:.1}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `12288` → `12KB`, `12024036` → `11.5MB`, `12024036048` → `11.2GB` (never bytes).
pub fn human_file_size(bytes: u64) -> String {
    let kb = bytes as f64 / 1024.0;
    if kb < 1024.0 {
        return format!("{}KB", rounded(kb));
    }
    let mb = kb / 1024.0;
    if mb < 1024.0 {
        return format!("{}MB", rounded(mb));
    }
    format!("{}GB", rounded(mb / 1024.0))
}

/// `49` → `49s`, `90` → `1.5m`, `18000` → `5h`.
pub fn human_duration(seconds: u64) -> String {
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds as f64 / 60.0;
    if minutes < 60.0 {
        return format!("{}m", rounded(minutes));
    }
    format!("{}h", rounded(minutes / 60.0))
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sizes() {
        assert_eq!(human_file_size(12288), "12KB");
        assert_eq!(human_file_size(12024036), "11.5MB");
        assert_eq!(human_file_size(12024036048), "11.2GB");
        assert_eq!(human_file_size(40), "0KB");
        assert_eq!(human_file_size(0), "0KB");
        assert_eq!(human_file_size(10 * 1024), "10KB");
        assert_eq!(human_file_size(1023 * 1024 * 1024), "1023MB");
        assert_eq!(human_file_size(2048 * 1024 * 1024 * 1024), "2048GB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(49), "49s");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(60), "1m");
        assert_eq!(human_duration(90), "1.5m");
        assert_eq!(human_duration(614), "10.2m");
        assert_eq!(human_duration(18000), "5h");
        assert_eq!(human_duration(3600 * 100), "100h");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(100000), "100,000");
    }

    #[test]
    fn rule_is_box_drawing() {
        assert_eq!(rule_line(3), "───");
        assert_eq!(rule_line(80).chars().count(), 80);
    }
}
