//! Long operations (anything that signs a transaction) run as jobs: the action answers at
//! once with a fragment that polls `/jobs/{id}`, which shows each step as the client reports
//! it (transaction pending, then committed at height N; keys re-wrapped) and, at the end, the
//! result or the API's error code and message.

use crate::{page, App, Me, UiError};
use axum::extract::Path;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped};
use medledger_client::progress::{self, Step};
use parking_lot::Mutex;
use std::collections::HashMap;

/// At most this many jobs are remembered; the oldest finished ones go first.
pub const MAX_JOBS: usize = 512;

/// At most this many jobs run at once (each holds a thread while it waits for a block).
pub const MAX_RUNNING: usize = 32;

struct Job {
    owner: usize,
    title: String,
    steps: Vec<Step>,
    /// The result's HTML, or the error message.
    outcome: Option<Result<String, String>>,
    seq: u64,
}

#[derive(Default)]
pub struct Jobs {
    map: Mutex<(u64, HashMap<String, Job>)>,
}

impl Jobs {
    /// No job at all (for tests).
    pub fn is_empty(&self) -> bool {
        self.map.lock().1.is_empty()
    }

    /// Registers a job, unless [`MAX_RUNNING`] are already running.
    fn insert(&self, id: String, owner: usize, title: String) -> bool {
        let mut g = self.map.lock();
        if g.1.values().filter(|j| j.outcome.is_none()).count() >= MAX_RUNNING {
            return false;
        }
        g.0 += 1;
        let seq = g.0;
        if g.1.len() >= MAX_JOBS {
            let oldest =
                g.1.iter().filter(|(_, j)| j.outcome.is_some()).min_by_key(|(_, j)| j.seq).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                g.1.remove(&k);
            }
        }
        g.1.insert(id, Job { owner, title, steps: Vec::new(), outcome: None, seq });
        true
    }

    fn step(&self, id: &str, step: Step) {
        if let Some(j) = self.map.lock().1.get_mut(id) {
            j.steps.push(step);
        }
    }

    fn finish(&self, id: &str, outcome: Result<String, String>) {
        if let Some(j) = self.map.lock().1.get_mut(id) {
            j.outcome = Some(outcome);
        }
    }

    fn render(&self, id: &str, owner: usize) -> Option<Markup> {
        let g = self.map.lock();
        let j = g.1.get(id).filter(|j| j.owner == owner)?;
        Some(render(id, j))
    }
}

fn render(id: &str, j: &Job) -> Markup {
    let running = j.outcome.is_none();
    html! {
        div.job id=(format!("job-{id}")) aria-live="polite" aria-busy=(running)
            hx-get=[running.then(|| format!("/jobs/{id}"))]
            hx-trigger=[running.then_some("load delay:300ms")]
            hx-swap=[running.then_some("outerHTML")] {
            strong { (j.title) }
            ol {
                @if j.steps.is_empty() && running { li { "signing and sending…" } }
                @for s in &j.steps {
                    li.step {
                        @match s {
                            Step::Pending(tx) => { "transaction " (page::short(&tx.to_hex())) " " span.tag.warn { "pending" } }
                            Step::Committed { tx, height } => {
                                "transaction " a.tx href=(format!("/explorer/txs/{}", tx.to_hex())) { (page::short(&tx.to_hex())) } " " span.tag.ok { "committed" }
                                " at height " span.height { (height) }
                            }
                            Step::Note(n) => { (n) }
                        }
                    }
                }
            }
            @match &j.outcome {
                None => { p { "working…" } }
                Some(Ok(html)) => { div.result { (PreEscaped(html)) } }
                Some(Err(e)) => { (page::error_box(e)) }
            }
        }
    }
}

/// Starts `work` as a job for `me` and returns the fragment that follows it.
pub fn start(
    me: &Me,
    title: impl Into<String>,
    work: impl FnOnce() -> Result<Markup, String> + Send + 'static,
) -> Result<Html<String>, UiError> {
    let id = hex::encode(&medledger_client::tx::new_id().0[..12]);
    let ui: App = me.ui.clone();
    if !ui.jobs.insert(id.clone(), me.index, title.into()) {
        return Err(UiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            message: format!("{MAX_RUNNING} operations are already in progress; wait for one to finish"),
        });
    }
    let (ui2, id2) = (ui.clone(), id.clone());
    std::thread::spawn(move || {
        let (ui3, id3) = (ui2.clone(), id2.clone());
        // A panic in the work still ends the job (and frees its slot), as an error.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            progress::observe(move |s| ui3.jobs.step(&id3, s), work)
        }))
        .unwrap_or_else(|_| Err("internal error: the operation failed unexpectedly; see the UI's log".into()));
        ui2.jobs.finish(&id2, out.map(Markup::into_string));
    });
    Ok(page::fragment(ui.jobs.render(&id, me.index).unwrap_or_default()))
}

async fn poll(me: Me, Path(id): Path<String>) -> Result<Html<String>, UiError> {
    me.ui.jobs.render(&id, me.index).map(page::fragment).ok_or_else(|| UiError::not_found("no such job"))
}

pub(crate) fn routes() -> Router<App> {
    Router::new().route("/jobs/{id}", get(poll))
}
