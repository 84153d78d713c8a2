//! A progress bar on stderr while an engine operation runs, only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tresor_engine::progress::Progress;

/// Runs `work` with a progress bar fed from its [`Progress`] counters.
pub fn with_progress<T>(label: &str, work: impl FnOnce(&Progress) -> T) -> T {
    let progress = Progress::default();
    if !std::io::stderr().is_terminal() {
        return work(&progress);
    }
    let finished = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Created once the operation knows its size, so it never shows 0 of 0 as done.
            let mut bar: Option<ProgressBar> = None;
            while !finished.load(Ordering::Relaxed) {
                let (done, total) = progress.snapshot();
                if total > 0 {
                    let bar = bar.get_or_insert_with(|| new_bar(label, total));
                    bar.set_length(total);
                    bar.set_position(done);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        let result = work(&progress);
        finished.store(true, Ordering::Relaxed);
        result
    })
}

fn new_bar(label: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}
