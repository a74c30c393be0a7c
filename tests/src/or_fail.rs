//! For benchmark drivers: a step the measurement cannot go on without
//! either gives its value or ends the process with exit code 1 and a line
//! saying what was being done and why it failed (not a panic and its trace).

/// Print `bench: measurement failed: <what>` and exit 1.
pub fn fail(what: &str) -> ! {
    eprintln!("bench: measurement failed: {what}");
    std::process::exit(1);
}

/// `.or_fail("doing what")` on a `Result` or an `Option`.
pub trait OrFail<T> {
    /// The value, or [`fail`] with `doing` (and the error, if any).
    fn or_fail(self, doing: &str) -> T;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, doing: &str) -> T {
        self.unwrap_or_else(|e| fail(&format!("{doing}: {e}")))
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, doing: &str) -> T {
        self.unwrap_or_else(|| fail(doing))
    }
}
