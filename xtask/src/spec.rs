//! The workloads the report knows by name: how to read each one, its Go anchor, and the targets the
//! issues set for it. A criterion group that is not listed here still appears in the report (in the
//! channel matrix or under "other benches"); listing it only adds the Go column and the targets.

/// How a group's median is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// Per element of the group's throughput (ns per goroutine, per message, ...).
    Element,
    /// Per benchmark iteration (one whole run, or one operation for `iter_custom` benches).
    Iteration,
}

/// A target from an issue, checked against the medians of one sitting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// gort's median at most `r` times Go's.
    GoRatio(f64),
    /// gort's median at most `r` times tokio's.
    TokioRatio(f64),
    /// gort's median at most this many nanoseconds.
    AtMostNs(f64),
}

/// Go's figure for a workload: the anchor program's argument and the key of the line it prints.
#[derive(Clone, Copy, Debug)]
pub struct GoAnchor {
    /// `main.go`'s workload argument.
    pub arg: &'static str,
    /// The key of the printed `key value` line.
    pub key: &'static str,
    /// Whether the value is in milliseconds (else nanoseconds).
    pub millis: bool,
}

/// One named workload.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The criterion group.
    pub group: &'static str,
    /// What it measures, for the report.
    pub what: &'static str,
    /// The issue that sets its targets.
    pub issue: u32,
    pub per: Per,
    pub go: Option<GoAnchor>,
    pub targets: &'static [Target],
}

const fn go(arg: &'static str, key: &'static str, millis: bool) -> Option<GoAnchor> {
    Some(GoAnchor { arg, key, millis })
}

/// The workloads of `shared/anchors/go/main.go` and the other named targets, in report order.
pub const SPECS: &[Spec] = &[
    Spec {
        group: "spawn_1m",
        what: "spawn and run 1M trivial goroutines (per goroutine)",
        issue: 2,
        per: Per::Element,
        go: go("spawn", "spawn_1m_ns_per_goroutine", false),
        targets: &[Target::GoRatio(0.7)],
    },
    Spec {
        group: "skynet_1m",
        what: "skynet over 1M goroutines, parents join children (per run)",
        issue: 2,
        per: Per::Iteration,
        go: go("skynet", "skynet_1m_ms", true),
        targets: &[Target::GoRatio(0.7)],
    },
    Spec {
        group: "chained_spawn_1m",
        what: "chained spawn 1M deep (per spawn)",
        issue: 2,
        per: Per::Element,
        go: go("chained", "chained_spawn_ns_per_spawn", false),
        targets: &[Target::GoRatio(0.7)],
    },
    Spec {
        group: "yield_1000x1000",
        what: "1000 goroutines x 1000 yields (per yield)",
        issue: 2,
        per: Per::Element,
        go: go("yield", "yield_many_ns_per_yield", false),
        targets: &[Target::TokioRatio(1.0)],
    },
    Spec {
        group: "pingpong_unbuffered",
        what: "unbuffered ping-pong (per round trip)",
        issue: 3,
        per: Per::Element,
        go: go("pingpong", "pingpong_unbuffered_ns_per_roundtrip", false),
        targets: &[Target::GoRatio(0.7), Target::TokioRatio(1.0)],
    },
    Spec {
        group: "select2",
        what: "select over two buffered channels (per receive)",
        issue: 3,
        per: Per::Element,
        go: go("select", "select2_ns_per_op", false),
        targets: &[Target::GoRatio(1.0), Target::TokioRatio(1.0)],
    },
    Spec {
        group: "mpmc_4x4_cap128",
        what: "4 senders, 4 receivers, capacity 128 (per message)",
        issue: 3,
        per: Per::Element,
        go: go("mpmc", "mpmc_4x4_cap128_ns_per_msg", false),
        targets: &[Target::GoRatio(1.0), Target::TokioRatio(1.0)],
    },
    Spec {
        group: "mpmc_4x4_cap0",
        what: "4 senders, 4 receivers, unbuffered (per message)",
        issue: 3,
        per: Per::Element,
        go: go("mpmc", "mpmc_4x4_cap0_ns_per_msg", false),
        targets: &[Target::GoRatio(1.0), Target::TokioRatio(1.0)],
    },
    Spec {
        group: "skynet_1m_channels",
        what: "skynet over 1M goroutines with channels, as Go's (per run)",
        issue: 3,
        per: Per::Iteration,
        go: go("skynet", "skynet_1m_ms", true),
        targets: &[Target::TokioRatio(1.0)],
    },
    Spec {
        group: "sleep_50us",
        what: "one 50 us sleep (per sleep)",
        issue: 3,
        per: Per::Iteration,
        go: None,
        targets: &[Target::AtMostNs(100_000.0), Target::TokioRatio(1.0)],
    },
    Spec {
        group: "sleep_50us_beside_yielders",
        what: "one 50 us sleep beside goroutines that yield (per sleep)",
        issue: 3,
        per: Per::Iteration,
        go: None,
        targets: &[Target::TokioRatio(1.0)],
    },
];

/// The crossbeam-channel matrix workloads (issue 3: gort ahead of tokio wherever tokio runs).
pub const MATRIX_WORKLOADS: &[&str] = &["seq", "spsc", "mpsc", "mpmc", "select_rx", "select_both"];

/// The spec of a group, if it is a named workload.
pub fn spec(group: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.group == group)
}

/// Whether a group belongs to the channel matrix (`WORKLOAD/CAPACITY`).
pub fn is_matrix(group: &str) -> bool {
    group
        .split_once('/')
        .is_some_and(|(w, _)| MATRIX_WORKLOADS.contains(&w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_unique_and_matrix_groups_are_recognised() {
        for (i, a) in SPECS.iter().enumerate() {
            assert!(
                SPECS[i + 1..].iter().all(|b| b.group != a.group),
                "{} listed twice",
                a.group
            );
            assert!(!is_matrix(a.group));
        }
        assert!(is_matrix("select_rx/boundedN"));
        assert!(!is_matrix("select2"));
        assert!(!is_matrix("mpmc_4x4_cap0"));
    }
}
