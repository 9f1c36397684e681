//! Label values with bounded cardinality.
//!
//! Every distinct label value is a time series that Prometheus keeps for
//! weeks, and a crash reason is free text that particles (and, through
//! the methods and bodies they echo, any client) choose. So reasons are
//! sorted into a fixed set of classes where their shape is known, the rest
//! are shortened to a stable stem, and only the first few distinct stems
//! get series of their own: later ones are counted as `other`.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value that stands for every value past a [`Capped`] set's
/// limit (and for an empty reason).
pub const OTHER: &str = "other";

/// How many characters of a free-text reason make its label.
pub const STEM_CHARS: usize = 40;

/// What a crash reason says, as a label value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One of the runtime's (or the WASM host's) own reasons, whose text
    /// embeds data (a panic's message, a Point, a method, a module name):
    /// the class alone is the label.
    Class(&'static str),
    /// A reason a particle chose (the text of its handler's `Err`, an
    /// injected fault's): its stem, still to be admitted by a [`Capped`].
    Text(String),
}

/// Sorts a crash reason ([`hyperverse::CrashNotice::reason`]) by the
/// shapes the runtime and the WASM host give their reasons (see
/// `run/guard.rs`, `run/serve.rs` and `modules/src/error.rs`).
///
/// A panic is one class whatever its message: panic messages carry
/// values, indices and source positions, one series each. A handler's
/// `Err` text is usually a fixed sentence that says what went wrong
/// (`asked to crash`), worth its own series: it is kept as its stem.
pub fn classify(reason: &str) -> Reason {
    let class = if reason == "panic" || reason.starts_with("panic: ") {
        "panic"
    } else if reason.starts_with("linked ") && reason.contains(" crashed: ") {
        "linked"
    } else if reason == "killed" {
        "killed"
    } else if reason == "normal" {
        "normal"
    } else if reason == "shutdown" || reason.starts_with("shutdown: ") {
        "shutdown"
    } else if reason.starts_with("no handler for method `") {
        "no_handler"
    } else if let Some(rest) = reason.strip_prefix("module `") {
        wasm_class(rest)
    } else {
        return Reason::Text(stem(reason));
    };
    Reason::Class(class)
}

/// A WASM guest's failure, by the host's error texts.
fn wasm_class(rest: &str) -> &'static str {
    if rest.contains("` trapped: ") {
        "wasm_trap"
    } else if rest.contains("` ran out of fuel") {
        "wasm_fuel"
    } else if rest.contains("hit the memory ceiling")
        || rest.contains("overflowed its stack")
        || rest.contains("bytes of output in one call")
        || rest.contains("went over its send budget")
    {
        "wasm_limit"
    } else if rest.contains("may not send to") {
        "wasm_denied"
    } else if rest.contains("broke the guest ABI") {
        "wasm_abi"
    } else {
        "wasm"
    }
}

/// A free-text reason's stem: its first line, runs of digits as one `#`
/// (so that `timed out after 3s` and `after 5s` are one series), anything
/// but letters, digits, spaces and `-_.:/()'` as `_`, at most
/// [`STEM_CHARS`] characters; [`OTHER`] if nothing is left.
pub fn stem(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("");
    let mut out = String::new();
    let mut chars = 0;
    let mut in_digits = false;
    for c in line.chars() {
        if chars == STEM_CHARS {
            break;
        }
        if c.is_ascii_digit() {
            if in_digits {
                continue;
            }
            in_digits = true;
            out.push('#');
        } else {
            in_digits = false;
            let keep = c.is_alphanumeric()
                || matches!(c, ' ' | '-' | '_' | '.' | ':' | '/' | '(' | ')' | '\'');
            out.push(if keep { c } else { '_' });
        }
        chars += 1;
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        OTHER.to_string()
    } else {
        trimmed.to_string()
    }
}

/// A label whose distinct values are capped: the first `limit` values
/// seen are themselves, every later one is [`OTHER`].
///
/// Taken on the runtime's threads (a crash's observer): the lock is held
/// for one set lookup, and a poisoned lock is used as it is (the set is
/// valid whatever panicked).
#[derive(Debug)]
pub struct Capped {
    seen: Mutex<HashSet<String>>,
    limit: usize,
}

impl Capped {
    /// At most `limit` distinct values besides [`OTHER`].
    pub fn new(limit: usize) -> Self {
        Capped {
            seen: Mutex::new(HashSet::new()),
            limit,
        }
    }

    /// `value`, if it was seen before or there is room for it; else
    /// [`OTHER`].
    pub fn admit(&self, value: &str) -> String {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.limit {
            seen.insert(value.to_string());
            return value.to_string();
        }
        OTHER.to_string()
    }
}

/// Crash reasons as label values: [`classify`], then free text capped.
#[derive(Debug)]
pub struct Reasons {
    texts: Capped,
}

impl Reasons {
    /// At most `texts` distinct free-text stems get series of their own.
    pub fn new(texts: usize) -> Self {
        Reasons {
            texts: Capped::new(texts),
        }
    }

    /// The `reason` label for a crash with this reason.
    pub fn label(&self, reason: &str) -> String {
        match classify(reason) {
            Reason::Class(class) => class.to_string(),
            Reason::Text(stem) => self.texts.admit(&stem),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_own_reasons_are_classes() {
        for (reason, class) in [
            (
                "panic: index out of bounds: the len is 3 but the index is 7",
                "panic",
            ),
            ("panic", "panic"),
            ("linked a:b crashed: boom", "linked"),
            ("killed", "killed"),
            ("normal", "normal"),
            ("shutdown", "shutdown"),
            ("shutdown: by the operator", "shutdown"),
            ("no handler for method `frobnicate`", "no_handler"),
            (
                "module `counter`: `handle` trapped: unreachable",
                "wasm_trap",
            ),
            (
                "module `c`: `handle` ran out of fuel (1000 per call)",
                "wasm_fuel",
            ),
            (
                "module `c`: `handle` hit the memory ceiling of 16 pages of 64 KiB",
                "wasm_limit",
            ),
            (
                "module `c`: `start` overflowed its stack of 65536 bytes",
                "wasm_limit",
            ),
            (
                "module `c`: particle `x` went over its send budget of 10 sends in `handle`",
                "wasm_limit",
            ),
            (
                "module `c`: particle `x` may not send to `y` (from `handle`): …",
                "wasm_denied",
            ),
            (
                "module `c`: `handle` broke the guest ABI: bad pointer",
                "wasm_abi",
            ),
            ("module `c` is not loaded", "wasm"),
        ] {
            assert_eq!(classify(reason), Reason::Class(class), "{reason}");
        }
    }

    #[test]
    fn a_particles_own_reason_is_its_stem() {
        assert_eq!(
            classify("asked to crash"),
            Reason::Text("asked to crash".into())
        );
        // Digits collapse; quotes, commas, `=` and braces never reach a label.
        assert_eq!(stem("timed out after 3500ms"), "timed out after #ms");
        assert_eq!(stem("timed out after 12ms"), "timed out after #ms");
        assert_eq!(stem("bad \"x\"={1,2}"), "bad _x___#_#_");
        // The first line only, trimmed, at most STEM_CHARS characters
        // (counted as characters: a multibyte one is never cut).
        assert_eq!(stem("first\nsecond"), "first");
        let long = "é".repeat(100);
        assert_eq!(stem(&long).chars().count(), STEM_CHARS);
        assert_eq!(stem(""), OTHER);
        assert_eq!(stem("  \n"), OTHER);
        // A panic that says `panicked` but is not the runtime's shape is text.
        assert_eq!(classify("panicky"), Reason::Text("panicky".into()));
    }

    #[test]
    fn distinct_texts_are_capped_with_other() {
        let reasons = Reasons::new(2);
        assert_eq!(reasons.label("a"), "a");
        assert_eq!(reasons.label("b"), "b");
        assert_eq!(reasons.label("c"), OTHER);
        // Seen ones keep their series; classes never take a slot.
        assert_eq!(reasons.label("a"), "a");
        assert_eq!(reasons.label("panic: 1"), "panic");
        assert_eq!(reasons.label("d"), OTHER);
        // Many distinct reasons: still only two series and `other`.
        let labels: HashSet<String> = (0..1000)
            .map(|i| reasons.label(&format!("reason {}", char::from(b'a' + (i % 26) as u8))))
            .collect();
        assert_eq!(labels, HashSet::from([OTHER.to_string()]));
    }
}
