//! Running test modules one at a time inside one test binary.
//!
//! Tests that start daemons with short leases, fence deadlines or several
//! etcd members must not compete with other tests for the CPU. Each such
//! file used to be a test binary of its own (cargo runs test binaries one
//! after another), but every release-profile test binary costs its own
//! optimisation of the dependencies' generic code. So they share one
//! binary per crate, and every test there starts with
//! `let _alone = alone(module_path!());`: tests of the same module may run
//! together (as they did in their own binary); tests of different modules
//! never overlap. A test thread waiting for another module blocks in
//! [`alone`] before its test has started anything.
//!
//! Used by `crates/lifeboat-region/tests/timing.rs` and
//! `crates/lifeboat/tests/daemons.rs` (through `#[path]`).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// The module whose tests are running, and how many of them.
struct Running {
    module: Option<&'static str>,
    tests: usize,
}

static RUNNING: Mutex<Running> = Mutex::new(Running {
    module: None,
    tests: 0,
});
static CHANGED: Condvar = Condvar::new();

/// Held by a test for as long as it runs; dropping it lets other modules in.
#[must_use = "hold it until the end of the test: `let _alone = alone(module_path!());`"]
pub struct Alone {
    module: &'static str,
}

/// A test that panicked while holding the lock poisons nothing that
/// matters here: the counts stay right because [`Alone`]'s drop runs while
/// the panic unwinds.
fn lock() -> MutexGuard<'static, Running> {
    RUNNING.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Running {
    /// Counts a test of `module` in when no other module's test runs.
    fn admit(&mut self, module: &'static str) -> bool {
        if self.module.is_some_and(|m| m != module) {
            return false;
        }
        self.module = Some(module);
        self.tests += 1;
        true
    }

    /// Counts a test of `module` out; true when the last one left.
    fn release(&mut self, module: &'static str) -> bool {
        assert_eq!(
            self.module,
            Some(module),
            "released by a module not running"
        );
        self.tests -= 1;
        if self.tests == 0 {
            self.module = None;
        }
        self.tests == 0
    }
}

/// Waits until no test of another module runs, then counts this test in.
pub fn alone(module: &'static str) -> Alone {
    let mut running = lock();
    while !running.admit(module) {
        running = CHANGED
            .wait(running)
            .unwrap_or_else(PoisonError::into_inner);
    }
    Alone { module }
}

impl Drop for Alone {
    fn drop(&mut self) {
        if lock().release(self.module) {
            CHANGED.notify_all();
        }
    }
}

#[test]
fn a_module_is_admitted_only_when_no_other_module_runs() {
    let mut r = Running {
        module: None,
        tests: 0,
    };
    assert!(r.admit("a"));
    assert!(r.admit("a"), "tests of one module run together");
    assert!(!r.admit("b"), "another module waits");
    assert!(!r.release("a"));
    assert!(!r.admit("b"), "while any test of the first module runs");
    assert!(r.release("a"));
    assert!(r.admit("b"));
    assert!(!r.admit("a"));
}
