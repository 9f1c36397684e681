//! What one child process measures, and how it hands that to the orchestrator.
//!
//! A child prints one JSON line per [`Measured`] on stdout; the orchestrator
//! reads them back with [`Measured::parse`]. Every rep is kept (not only the
//! median) so that the final report shows the spread, which on a shared
//! 2-core machine is as informative as the figure itself.

use std::time::Duration;

use serde_json::{json, Map, Value};

/// One figure measured in a child process.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Which figure of the shape this is (`"ring"`, `"spawn_rss"`, …).
    pub metric: String,
    /// Its unit, as printed.
    pub unit: String,
    /// Every rep, in the order they ran; the reported value is their median.
    pub reps: Vec<f64>,
    /// Facts about the run (sizes, sums, RSS before/after) for the JSON line.
    pub detail: Map<String, Value>,
}

impl Measured {
    /// A figure measured over several reps.
    pub fn reps(metric: &str, unit: &str, reps: Vec<f64>) -> Self {
        Measured {
            metric: metric.to_string(),
            unit: unit.to_string(),
            reps,
            detail: Map::new(),
        }
    }

    /// A figure measured once.
    pub fn once(metric: &str, unit: &str, value: f64) -> Self {
        Self::reps(metric, unit, vec![value])
    }

    /// Adds one detail for the JSON line.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }

    /// The median of the reps.
    pub fn value(&self) -> f64 {
        median(&self.reps)
    }

    /// The line a child prints for the orchestrator.
    pub fn to_line(&self) -> String {
        json!({
            "metric": self.metric,
            "unit": self.unit,
            "reps": self.reps,
            "detail": self.detail,
        })
        .to_string()
    }

    /// Reads back a line made by [`Measured::to_line`]; `None` for anything else.
    pub fn parse(line: &str) -> Option<Measured> {
        let v: Value = serde_json::from_str(line).ok()?;
        let reps: Vec<f64> = v["reps"]
            .as_array()?
            .iter()
            .map(Value::as_f64)
            .collect::<Option<_>>()?;
        if reps.is_empty() {
            return None;
        }
        Some(Measured {
            metric: v["metric"].as_str()?.to_string(),
            unit: v["unit"].as_str()?.to_string(),
            reps,
            detail: v["detail"].as_object().cloned().unwrap_or_default(),
        })
    }
}

/// Merges the figures of several child processes that measured the same
/// thing: reps are concatenated per metric, details come from the first
/// process, and `processes` says how many there were.
pub fn merge(runs: Vec<Vec<Measured>>) -> Vec<Measured> {
    let count = runs.len();
    let mut merged: Vec<Measured> = Vec::new();
    for m in runs.into_iter().flatten() {
        match merged.iter_mut().find(|x| x.metric == m.metric) {
            Some(x) => x.reps.extend(m.reps),
            None => merged.push(m),
        }
    }
    if count > 1 {
        for m in &mut merged {
            m.detail.insert("processes".into(), count.into());
        }
    }
    merged
}

/// The median (the mean of the middle two for an even count); NaN if empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Nanoseconds per operation.
pub fn ns_per(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Microseconds per operation.
pub fn us_per(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / ops as f64
}

/// A field of `/proc/self/status` in KB (`VmRSS`, `VmHWM`); 0 where there is none.
pub fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Current resident set size, KB.
pub fn rss_kb() -> u64 {
    status_kb("VmRSS")
}

/// Peak resident set size of this process so far, KB.
pub fn peak_rss_kb() -> u64 {
    status_kb("VmHWM")
}

/// Lets in-flight work (task teardown, allocator bookkeeping) settle before an
/// RSS reading, so that the before and after readings are comparable.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn line_round_trip() {
        let m = Measured::reps("ring", "ns/wave", vec![1.5, 2.5, 2.0]).with("hops", 10);
        let back = Measured::parse(&m.to_line()).unwrap();
        assert_eq!(back.metric, "ring");
        assert_eq!(back.unit, "ns/wave");
        assert_eq!(back.reps, vec![1.5, 2.5, 2.0]);
        assert_eq!(back.value(), 2.0);
        assert_eq!(back.detail["hops"], 10);
        assert!(Measured::parse("not json").is_none());
    }

    #[test]
    fn merge_concatenates_reps_per_metric() {
        let run = |t: f64, kb: f64| {
            vec![
                Measured::once("spawn", "us/actor", t).with("n", 1),
                Measured::once("spawn_rss", "KB/actor", kb),
            ]
        };
        let merged = merge(vec![run(2.0, 1.5), run(3.0, 1.4), run(1.0, 1.6)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].reps, vec![2.0, 3.0, 1.0]);
        assert_eq!(merged[0].value(), 2.0);
        assert_eq!(merged[1].value(), 1.5);
        assert_eq!(merged[0].detail["processes"], 3);
        assert_eq!(merged[0].detail["n"], 1);
    }

    #[test]
    fn status_fields_are_read() {
        let rss = rss_kb();
        assert!(rss > 0);
        // The peak is read after the current size: other tests' threads may
        // grow the process in between, never shrink its peak.
        assert!(peak_rss_kb() >= rss);
        assert_eq!(status_kb("NoSuchField"), 0);
    }
}
