use clap::Parser;
use exportd::config::{Cli, Command, Config};
use std::process::ExitCode;

// mimalloc returns freed memory to the system promptly; glibc's per-thread arenas kept
// large transient buffers (blob segments, spills) resident after big exports. It is built
// without transparent huge pages (Cargo.toml).
// The `system-alloc` feature keeps the system allocator so heap profilers (heaptrack,
// massif) that hook malloc can see every allocation.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed pages resident for `purge_delay` ms before it returns them (v3's
/// default is 1000). An export frees and allocates steadily, so about a second of its
/// turnover stayed resident: a fresh server peaked 41-47 MiB above idle during one export,
/// less for exports shorter than a second. At 10 ms (v2's default) exports of 300k and 100k
/// documents both peak at 29-30 MiB, at the same speed. mimalloc's own environment
/// variables for it (`MIMALLOC_PURGE_DELAY`, formerly `MIMALLOC_RESET_DELAY`) still decide.
#[cfg(not(feature = "system-alloc"))]
mod allocator {
    /// `mi_option_purge_delay` in mimalloc.h (the same in v2 and v3).
    const PURGE_DELAY: i32 = 15;
    pub const PURGE_DELAY_MS: i64 = 10;

    unsafe extern "C" {
        fn mi_option_set(option: i32, value: std::ffi::c_long);
        #[cfg(test)]
        fn mi_option_get(option: i32) -> std::ffi::c_long;
    }

    /// Whether the environment sets the purge delay (mimalloc reads names in any case).
    pub fn set_by_environment() -> bool {
        std::env::vars_os().any(|(k, _)| {
            k.to_str().is_some_and(|k| {
                k.eq_ignore_ascii_case("MIMALLOC_PURGE_DELAY")
                    || k.eq_ignore_ascii_case("MIMALLOC_RESET_DELAY")
            })
        })
    }

    pub fn tune() {
        if !set_by_environment() {
            // SAFETY: sets one integer option of the allocator that `mimalloc` links in
            unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as std::ffi::c_long) }
        }
    }

    #[cfg(test)]
    pub fn purge_delay() -> i64 {
        // SAFETY: reads one integer option of the allocator
        unsafe { mi_option_get(PURGE_DELAY) as i64 }
    }
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-alloc"))]
    allocator::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => {
            exportd::app::init_logging(a.common.log_format);
            Config::for_serve(a).and_then(|c| run(c, false))
        }
        Command::Demo(a) => {
            exportd::app::init_logging(a.common.log_format);
            exportd::demo::prepare(a).and_then(|c| run(c, true))
        }
        Command::Hook { check } => {
            return ExitCode::from(exportd::hook::sandbox::child_main(check) as u8);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exportd: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(config: Config, demo: bool) -> Result<(), String> {
    let listener = exportd::app::listen(&config.bind)?;
    actix_web::rt::System::new().block_on(async move {
        let state = exportd::app::build_state(config)?;
        let banner = if demo {
            Some(exportd::demo::seed(&state).await?)
        } else {
            None
        };
        exportd::app::serve(state, listener, banner).await
    })
}

#[cfg(all(test, not(feature = "system-alloc")))]
mod tests {
    #[test]
    fn the_allocator_purges_freed_pages_after_ten_milliseconds() {
        if super::allocator::set_by_environment() {
            return; // the environment decides, as it should
        }
        // 1000 is v3's default of the purge delay and of no other option: the index is right
        assert_eq!(super::allocator::purge_delay(), 1000);
        super::allocator::tune();
        assert_eq!(
            super::allocator::purge_delay(),
            super::allocator::PURGE_DELAY_MS
        );
    }
}
