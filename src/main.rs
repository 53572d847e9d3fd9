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

fn main() -> ExitCode {
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
