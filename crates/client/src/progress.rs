//! Progress of long operations, for interfaces that show it (the web UI shows each
//! transaction as pending, then committed at height N).
//!
//! An observer is installed for the current thread with [`observe`]; the client reports to it
//! from wherever a step happens ([`crate::tx::wait_committed`], the re-wrapping loop). With no
//! observer installed, reporting does nothing, so the CLI and the benches pay nothing.

use medledger_types::Hash;
use std::cell::RefCell;

/// One step of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A transaction was submitted and waits for a block.
    Pending(Hash),
    /// A transaction was committed at this height.
    Committed { tx: Hash, height: u64 },
    /// Anything else worth showing ("re-wrapping 3 of 5 record versions").
    Note(String),
}

type Observer = Box<dyn FnMut(Step)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Runs `body` with `observer` receiving every step reported on this thread, then removes it.
pub fn observe<T>(observer: impl FnMut(Step) + 'static, body: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            OBSERVER.with(|o| o.borrow_mut().take());
        }
    }
    OBSERVER.with(|o| *o.borrow_mut() = Some(Box::new(observer)));
    let _reset = Reset;
    body()
}

/// Reports `step` to this thread's observer, if any.
pub fn report(step: Step) {
    OBSERVER.with(|o| {
        if let Ok(mut o) = o.try_borrow_mut() {
            if let Some(f) = o.as_mut() {
                f(step)
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn steps_reach_the_observer_of_their_thread_only_while_it_is_installed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        observe(
            move |step| s.lock().unwrap().push(step),
            || {
                report(Step::Note("one".into()));
                std::thread::spawn(|| report(Step::Note("other thread".into()))).join().unwrap();
            },
        );
        report(Step::Note("after".into()));
        assert_eq!(*seen.lock().unwrap(), vec![Step::Note("one".into())]);
    }
}
