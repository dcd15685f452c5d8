//! Progress of copies and substitutions on standard error: what is being
//! copied, from where, how much of it and how fast. On a terminal a status
//! line is redrawn in place (and cleared when the path is done); in logs only
//! the announcement line is written, once per path, as CppNix's raw log does.

use std::io::IsTerminal;
use std::time::Instant;

use nivis_formats::StorePath;
use nivis_substitute::Progress;

/// A progress callback for `nivis_substitute`'s copy functions. With
/// `announce`, each path gets a permanent "copying path 'P' from 'SOURCE'..."
/// line (legacy commands); otherwise only the terminal status line is drawn.
pub fn copy_progress(store_dir: String, announce: bool) -> impl FnMut(&Progress<'_>) {
    let on_terminal = std::io::stderr().is_terminal();
    let mut current: Option<(StorePath, Instant)> = None;
    move |p: &Progress<'_>| {
        if current.as_ref().is_none_or(|(path, _)| path != p.path) {
            current = Some((p.path.clone(), Instant::now()));
            if announce {
                eprintln!("copying path '{store_dir}/{}' from '{}'...", p.path, p.source);
            }
        }
        if !on_terminal {
            return;
        }
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        if p.done >= p.total && p.done > 0 {
            eprint!("\r\x1b[K");
            return;
        }
        let elapsed = current.as_ref().map(|(_, t)| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        let rate = if elapsed > 0.05 { format!(", {:.1} MiB/s", mib(p.done) / elapsed) } else { String::new() };
        eprint!(
            "\r\x1b[Kcopying '{store_dir}/{}' from '{}': {:.1}/{:.1} MiB{rate}",
            p.path,
            p.source,
            mib(p.done),
            mib(p.total)
        );
    }
}
