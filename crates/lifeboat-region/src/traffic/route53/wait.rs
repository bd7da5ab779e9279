//! Waiting for a change batch to be `INSYNC`: `GetChange` polled with a
//! doubling delay, bounded in time. The schedule is pure; the loop is in
//! [`super::Route53Provider`].

use std::time::Duration;

/// How long and how often to poll `GetChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up after this long (the records stay accepted; only the wait
    /// ends).
    pub timeout: Duration,
}

impl Default for WaitPolicy {
    /// Route 53 syncs within about a minute: poll after 1, 2, 4, 8 s and then
    /// every 10 s, for at most 5 minutes.
    fn default() -> Self {
        WaitPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
        }
    }
}

/// What to do after a `GetChange` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    PollAfter(Duration),
    GiveUp,
}

impl WaitPolicy {
    /// After the `polls`-th answer (0 for the `ChangeResourceRecordSets`
    /// answer itself), `elapsed` since the change was submitted.
    pub fn next(&self, insync: bool, polls: u32, elapsed: Duration) -> Next {
        if insync {
            return Next::Done;
        }
        if elapsed >= self.timeout {
            return Next::GiveUp;
        }
        let delay = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(polls.min(16)))
            .min(self.max_delay);
        // Never sleep past the deadline.
        Next::PollAfter(delay.min(self.timeout - elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_bounded_schedule() {
        let p = WaitPolicy::default();
        let s = Duration::from_secs;
        let table = [
            (true, 0, s(0), Next::Done),
            (true, 9, s(400), Next::Done),
            (false, 0, s(0), Next::PollAfter(s(1))),
            (false, 1, s(1), Next::PollAfter(s(2))),
            (false, 2, s(3), Next::PollAfter(s(4))),
            (false, 3, s(7), Next::PollAfter(s(8))),
            (false, 4, s(15), Next::PollAfter(s(10))),
            (false, 40, s(100), Next::PollAfter(s(10))),
            (false, 40, s(295), Next::PollAfter(s(5))),
            (false, 40, s(300), Next::GiveUp),
        ];
        for (insync, polls, elapsed, want) in table {
            assert_eq!(
                p.next(insync, polls, elapsed),
                want,
                "{insync} {polls} {elapsed:?}"
            );
        }
    }
}
