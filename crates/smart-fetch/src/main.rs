//! The `smart-fetch` binary: a thin shell over `smart_fetch::cli` (parse, run on a tokio
//! runtime, print one clear message and exit with the right status).

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    smart_fetch::cli::main(std::env::args_os())
}

/// glibc gives each thread that allocates a heap of its own ("arena") and keeps what is
/// freed in each. Our threads mostly wait on the network, so two are plenty, and a
/// 100,000-patient crawl peaks at about 30 MB instead of 34 (issue 14). A
/// `MALLOC_ARENA_MAX` the user sets wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only changes the allocator's settings, and no other thread
        // exists yet. Its result only says whether the setting took; either way is fine.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
