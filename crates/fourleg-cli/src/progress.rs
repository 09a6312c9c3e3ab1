//! Progress on a terminal (a spinner per service with its current step) or
//! as plain lines when stderr is not a terminal (CI logs).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use fourleg_lab::{Progress, Service};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws the lab's progress on stderr.
#[derive(Debug)]
pub struct Reporter {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Service, ProgressBar>>,
}

impl Reporter {
    pub fn new() -> Self {
        let multi =
            std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { multi, bars: Mutex::new(HashMap::new()) }
    }

    fn bar(&self, service: Service) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().ok()?;
        Some(
            bars.entry(service)
                .or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:<9} {msg} ({elapsed})")
                            .expect("valid template"),
                    );
                    bar.set_prefix(service.name());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                })
                .clone(),
        )
    }

    /// Stops every spinner still turning.
    pub fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

impl Progress for Reporter {
    fn step(&self, service: Service, step: &str) {
        match self.bar(service) {
            Some(bar) => bar.set_message(step.to_owned()),
            None => eprintln!("{:<9} {step}", service.name()),
        }
    }

    fn ready(&self, service: Service, took: Duration, reused: bool) {
        let line =
            if reused { "already running, healthy".to_owned() } else { format!("ready in {:.1}s", took.as_secs_f64()) };
        match self.bar(service) {
            Some(bar) => {
                bar.set_style(ProgressStyle::with_template("✔ {prefix:<9} {msg}").expect("valid template"));
                bar.finish_with_message(line);
            }
            None => eprintln!("{:<9} {line}", service.name()),
        }
    }

    fn failed(&self, service: Service) {
        match self.bar(service) {
            Some(bar) => {
                bar.set_style(ProgressStyle::with_template("✘ {prefix:<9} {msg}").expect("valid template"));
                bar.abandon_with_message("failed");
            }
            None => eprintln!("{:<9} failed", service.name()),
        }
    }
}
