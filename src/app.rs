//! Wiring: open the store, build the HTTP app, serve, shut down cleanly.

use crate::config::{Config, LogFormat};
use crate::crypto::sha256;
use crate::http;
use crate::store::Store;
use actix_web::{HttpServer, web};
use std::path::Path;
use std::sync::Arc;

pub struct AppState {
    pub store: Store,
    pub exports: crate::export::ExportService,
    pub config: Arc<Config>,
    pub system_token_hash: [u8; 32],
    /// `GET /exports/{id}` bodies, by stored record (see [`crate::store::derived`]).
    pub export_views: crate::store::derived::DerivedCache<http::exports::RenderedExport>,
}

/// Opens the store and settles the system token.
pub fn build_state(config: Config) -> Result<web::Data<AppState>, String> {
    let store =
        Store::open_with_cache(&config.data_dir, config.master_key.clone(), config.cache_mb)?;
    let token = match &config.system_token {
        Some(t) => t.clone(),
        None => load_or_create_system_token(&config.data_dir)?,
    };
    // leftovers are only wasted space: a sweep that fails is logged, and the janitor retries
    match store.sweep_export_leftovers() {
        Ok(0) => {}
        Ok(swept) => tracing::info!(
            swept,
            "removed side files and events of exports that are gone"
        ),
        Err(e) => tracing::warn!(error = %e, "could not sweep what interrupted exports left"),
    }
    let reclaimed = store
        .reclaim_blobs()
        .map_err(|e| format!("cannot reclaim unfinished blobs: {e}"))?;
    if reclaimed > 0 {
        tracing::info!(
            reclaimed,
            "reclaimed blobs left unfinished by an earlier run"
        );
    }
    let exports = crate::export::actors::ExportSupervisor::start(
        store.clone(),
        config.max_concurrent,
        config.hook.clone(),
    )
    .map_err(|e| format!("cannot recover exports: {e}"))?;
    {
        use actix::Actor;
        crate::export::janitor::Janitor {
            store: store.clone(),
            exports: exports.clone(),
            interval: config.janitor_interval,
        }
        .start();
    }
    Ok(web::Data::new(AppState {
        exports,
        store,
        system_token_hash: sha256(token.as_bytes()),
        config: Arc::new(config),
        export_views: Default::default(),
    }))
}

fn load_or_create_system_token(dir: &Path) -> Result<String, String> {
    let path = dir.join("system.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            tracing::info!(path = %path.display(), "system token loaded");
            return Ok(t);
        }
    }
    let token = format!("sys_{}", crate::crypto::random_hex(32));
    write_secret_file(&path, &token)?;
    tracing::info!(path = %path.display(), "system token generated");
    Ok(token)
}

/// Writes a file readable by its owner only (0600).
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// Serves until SIGTERM/SIGINT, then flushes and returns.
/// Binds the configured address; done before anything else starts so that a port in use
/// fails fast with one line.
pub fn listen(bind: &str) -> Result<std::net::TcpListener, String> {
    std::net::TcpListener::bind(bind).map_err(|e| format!("cannot listen on {bind}: {e}"))
}

/// `banner` is printed once the server is up (the demo's credentials and URL).
pub async fn serve(
    state: web::Data<AppState>,
    listener: std::net::TcpListener,
    banner: Option<String>,
) -> Result<(), String> {
    let bind = state.config.bind.clone();
    let st = state.clone();
    let server = HttpServer::new(move || http::build(st.clone()))
        .shutdown_timeout(5)
        .listen(listener)
        .map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    for addr in server.addrs() {
        tracing::info!(%addr, "exportd listening");
    }
    if let Some(b) = banner {
        println!("{b}");
    }
    server
        .run()
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("shutting down: running exports go back to pending");
    // runs, afterScripts, janitor sweeps, bulk inserts and uploads all write; 5 s for all
    let wait = std::time::Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + wait;
    state.exports.shutdown(wait).await;
    let quiet = state.store.writers.quiet_by(deadline).await;
    state
        .store
        .flush()
        .map_err(|e| format!("final flush failed: {e}"))?;
    if quiet {
        state.store.mark_clean_shutdown(&state.config.data_dir)?;
    } else {
        // the mark must be the last write, and a clean stop promises a whole log: with a
        // writer still going, the next start recovers as after a crash instead
        tracing::warn!(
            "an export, afterScript, janitor sweep, bulk insert or upload was still writing \
             after 5 s: stopping without the clean-shutdown mark; the next start recovers as \
             after a crash"
        );
    }
    Ok(())
}
