//! Progress of copies and substitutions on standard error: what is being
//! copied, from where, how much of it and how fast. Several paths may be in
//! flight at once (their reports interleave): on a terminal one status line is
//! redrawn in place, naming the path when one is copied and giving the count
//! and the bytes in all when several are; it is cleared when nothing is left.
//! In logs only the announcement line is written, once per path, as CppNix's
//! raw log does.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use nivis_formats::StorePath;
use nivis_substitute::Progress;

/// A path being copied.
struct Transfer {
    source: String,
    done: u64,
    total: u64,
}

/// Redraws of the status line are at most this frequent (progress reports
/// come about every MiB of each transfer).
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// A progress callback for `nivis_substitute`'s copy functions. With
/// `announce`, each path gets a permanent "copying path 'P' from 'SOURCE'..."
/// line (legacy commands); otherwise only the terminal status line is drawn.
pub fn copy_progress(store_dir: String, announce: bool) -> impl FnMut(&Progress<'_>) {
    let on_terminal = std::io::stderr().is_terminal();
    let mut active: BTreeMap<StorePath, Transfer> = BTreeMap::new();
    // Bytes copied since the first of the transfers now in flight started,
    // for the rate.
    let mut burst: Option<(Instant, u64)> = None;
    let mut status_shown = false;
    let mut last_draw: Option<Instant> = None;
    move |p: &Progress<'_>| {
        let mut changed = false;
        if p.ended {
            if let Some(transfer) = active.remove(p.path) {
                if let Some((_, bytes)) = &mut burst {
                    *bytes += p.done.saturating_sub(transfer.done);
                }
            }
            changed = true;
        } else if let Some(transfer) = active.get_mut(p.path) {
            if let Some((_, bytes)) = &mut burst {
                *bytes += p.done.saturating_sub(transfer.done);
            }
            transfer.done = p.done;
            transfer.total = p.total;
        } else {
            if on_terminal && status_shown {
                eprint!("\r\x1b[K");
                status_shown = false;
            }
            if announce {
                eprintln!("copying path '{store_dir}/{}' from '{}'...", p.path, p.source);
            }
            if active.is_empty() {
                burst = Some((Instant::now(), 0));
            }
            active.insert(p.path.clone(), Transfer { source: p.source.to_string(), done: p.done, total: p.total });
            changed = true;
        }
        if !on_terminal {
            return;
        }
        if active.is_empty() {
            if status_shown {
                eprint!("\r\x1b[K");
                status_shown = false;
            }
            burst = None;
            return;
        }
        if !changed && last_draw.is_some_and(|t| t.elapsed() < REDRAW_INTERVAL) {
            return;
        }
        last_draw = Some(Instant::now());
        status_shown = true;
        eprint!("\r\x1b[K{}", status_line(&store_dir, &active, burst));
    }
}

/// "copying 'P' from 'S': 1.0/4.0 MiB, 2.0 MiB/s", or with several paths
/// "copying 3 paths from 'S': 5.0/9.0 MiB, 2.0 MiB/s".
fn status_line(store_dir: &str, active: &BTreeMap<StorePath, Transfer>, burst: Option<(Instant, u64)>) -> String {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let done: u64 = active.values().map(|t| t.done).sum();
    let total: u64 = active.values().map(|t| t.total).sum();
    let rate = match burst {
        Some((start, bytes)) if start.elapsed().as_secs_f64() > 0.05 => {
            format!(", {:.1} MiB/s", mib(bytes) / start.elapsed().as_secs_f64())
        }
        _ => String::new(),
    };
    let mut sources = active.values().map(|t| t.source.as_str());
    let first_source = sources.next().unwrap_or_default();
    let from = if sources.all(|s| s == first_source) { format!(" from '{first_source}'") } else { String::new() };
    let what = match active.keys().next() {
        Some(path) if active.len() == 1 => format!("'{store_dir}/{path}'"),
        _ => format!("{} paths", active.len()),
    };
    format!("copying {what}{from}: {:.1}/{:.1} MiB{rate}", mib(done), mib(total))
}
