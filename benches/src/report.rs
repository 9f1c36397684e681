//! Pairs each Hyperverse figure with its same-run baseline and prints them:
//! a table for people, or one JSON object per line for tools.

use serde_json::{json, Map, Value};

use crate::measure::Measured;

/// One line of the report: a Hyperverse figure and the baseline figure it is
/// compared with. Either may be missing if its child process failed.
pub struct Row {
    /// The bench name in the report (`"ring"`, `"spawn_nowait_rss"`, …).
    pub bench: &'static str,
    /// What the baseline is (`"ractor"`).
    pub baseline_name: &'static str,
    /// The Hyperverse figure, or why there is none.
    pub hyperverse: Result<Measured, String>,
    /// The baseline figure, or why there is none.
    pub baseline: Result<Measured, String>,
}

impl Row {
    fn unit(&self) -> Option<&str> {
        match (&self.hyperverse, &self.baseline) {
            (Ok(m), _) | (_, Ok(m)) => Some(&m.unit),
            _ => None,
        }
    }

    /// Hyperverse over baseline, when both were measured.
    fn ratio(&self) -> Option<f64> {
        let (Ok(h), Ok(b)) = (&self.hyperverse, &self.baseline) else {
            return None;
        };
        let r = h.value() / b.value();
        r.is_finite().then_some(r)
    }

    /// The row as one JSON object: the required keys first, then the reps
    /// and the details of both sides.
    pub fn to_json(&self) -> Value {
        let value = |m: &Result<Measured, String>| m.as_ref().ok().map(|m| round(m.value()));
        let mut o = Map::new();
        o.insert("bench".into(), json!(self.bench));
        o.insert("value".into(), json!(value(&self.hyperverse)));
        o.insert("unit".into(), json!(self.unit()));
        o.insert("baseline".into(), json!(value(&self.baseline)));
        o.insert("ratio".into(), json!(self.ratio().map(round)));
        o.insert("baseline_name".into(), json!(self.baseline_name));
        o.insert("stat".into(), json!("median"));
        o.insert("allocator".into(), json!(crate::ALLOCATOR));
        for (key, side) in [("", &self.hyperverse), ("baseline_", &self.baseline)] {
            match side {
                Ok(m) => {
                    let reps: Vec<f64> = m.reps.iter().copied().map(round).collect();
                    o.insert(format!("{key}reps"), json!(reps));
                    o.insert(format!("{key}detail"), Value::Object(m.detail.clone()));
                }
                Err(why) => {
                    o.insert(format!("{key}error"), json!(why));
                }
            }
        }
        Value::Object(o)
    }
}

/// Three decimals are more than these figures' precision.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A figure with as many decimals as it deserves.
fn show(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Prints the rows as JSON lines (and nothing else) on stdout.
pub fn print_json(rows: &[Row]) {
    for row in rows {
        println!("{}", row.to_json());
    }
}

/// Prints the rows as a table, with a header that says how to read it.
pub fn print_table(rows: &[Row], heading: &str) {
    println!("{heading}");
    println!("ratio = hyperverse / baseline; every figure is a time or a memory size, so lower is better.");
    println!();
    println!(
        "{:<18} {:>12} {:>12}  {:<10} {:>7}  baseline is",
        "bench", "hyperverse", "baseline", "unit", "ratio"
    );
    println!("{}", "-".repeat(74));
    let cell = |m: &Result<Measured, String>| match m {
        Ok(m) => show(m.value()),
        Err(_) => "n/a".to_string(),
    };
    for row in rows {
        println!(
            "{:<18} {:>12} {:>12}  {:<10} {:>7}  {}",
            row.bench,
            cell(&row.hyperverse),
            cell(&row.baseline),
            row.unit().unwrap_or("-"),
            row.ratio().map(|r| format!("{r:.2}")).unwrap_or("-".into()),
            row.baseline_name,
        );
    }
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            [
                ("hyperverse", &r.hyperverse),
                (r.baseline_name, &r.baseline),
            ]
            .into_iter()
            .filter_map(move |(who, m)| {
                m.as_ref()
                    .err()
                    .map(|why| format!("{} ({who}): {why}", r.bench))
            })
        })
        .collect();
    if !failures.is_empty() {
        println!();
        for f in failures {
            println!("not measured: {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_row_has_the_required_keys() {
        let row = Row {
            bench: "ring",
            baseline_name: "ractor",
            hyperverse: Ok(Measured::reps("ring", "ns/wave", vec![300.0, 200.0, 250.0])),
            baseline: Ok(Measured::once("ring", "ns/wave", 500.0)),
        };
        let v: Value = serde_json::from_str(&row.to_json().to_string()).unwrap();
        assert_eq!(v["bench"], "ring");
        assert_eq!(v["value"], 250.0);
        assert_eq!(v["unit"], "ns/wave");
        assert_eq!(v["baseline"], 500.0);
        assert_eq!(v["ratio"], 0.5);
    }

    #[test]
    fn a_failed_side_gives_nulls() {
        let row = Row {
            bench: "skynet",
            baseline_name: "ractor",
            hyperverse: Err("timed out".into()),
            baseline: Ok(Measured::once("skynet", "ms", 5000.0)),
        };
        let v = row.to_json();
        assert!(v["value"].is_null());
        assert!(v["ratio"].is_null());
        assert_eq!(v["unit"], "ms");
        assert_eq!(v["error"], "timed out");
    }
}
