//! What the user sees on stdout: rule lines, the done line, human sizes and durations,
//! thousands separators (spec §19.1). No logic about exports.

/// Full-width rule (80 columns when stdout is not a terminal).
pub fn rule() {
    todo!()
}

/// Rule line then `✨ Done ✨`.
pub fn print_done() {
    todo!()
}

pub fn human_file_size(bytes: u64) -> String {
    let _ = bytes;
    todo!()
}

pub fn human_duration(seconds: u64) -> String {
    let _ = seconds;
    todo!()
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let _ = n;
    todo!()
}
