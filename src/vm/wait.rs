//! One way to wait: ask for a condition until it holds, a deadline passes
//! or the user presses Ctrl-C, with the spinner saying what for. Every wait
//! of bkt (an address, a port, a shutdown, an install) goes through
//! [`poll_until`].

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::ui::Spinner;

/// Ask `check` every `every` until it gives `Some`, or `deadline` passes
/// (`Ok(None)`), or an interruption was noted (the `Interrupted` error).
/// `what` is shown once the first answer was "not yet" (a wait that ends at
/// once says nothing); `check` may change the message as the wait goes on.
/// An error from `check` ends the wait with it.
pub fn poll_until<T>(
    deadline: Option<Instant>,
    every: Duration,
    spinner: &Spinner,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let mut said = false;
    loop {
        crate::interrupt::check()?;
        let asked = Instant::now();
        if let Some(v) = check()? {
            return Ok(Some(v));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(None);
        }
        if !said && !what.is_empty() {
            spinner.set_message(what);
            said = true;
        }
        let mut pause = (asked + every).saturating_duration_since(now);
        if let Some(d) = deadline {
            pause = pause.min(d.saturating_duration_since(now));
        }
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_until_the_condition_then_stops() {
        let s = crate::ui::Ui::capture().quiet_spinner();
        let mut n = 0;
        let got = poll_until(None, Duration::from_millis(1), &s, "", || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(got, Some(3));
        assert_eq!(n, 3);
    }

    #[test]
    fn a_deadline_ends_it_with_none_after_one_last_look() {
        let s = crate::ui::Ui::capture().quiet_spinner();
        let mut n = 0;
        let t = Instant::now();
        let got: Option<()> = poll_until(
            Some(t + Duration::from_millis(30)),
            Duration::from_millis(10),
            &s,
            "",
            || {
                n += 1;
                Ok(None)
            },
        )
        .unwrap();
        assert_eq!(got, None);
        assert!(n >= 2, "looked {n} times");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn an_error_ends_it() {
        let s = crate::ui::Ui::capture().quiet_spinner();
        let got: Result<Option<()>> = poll_until(None, Duration::from_millis(1), &s, "", || {
            anyhow::bail!("stalled")
        });
        assert_eq!(got.unwrap_err().to_string(), "stalled");
    }
}
