//! Waves taken per Star, as a counter that only grows.
//!
//! A lane counts the letters its particle took ([`hyperverse::LaneLoad`]'s
//! `taken`), across restarts, but the count ends with the particle: summing
//! live lanes at each scrape would drop whenever a busy particle stops, and
//! Prometheus reads any drop in a counter as a reset (its `rate()` would
//! then count the whole sum again). So each scrape adds, per Star, what
//! each live lane took since the previous scrape.
//!
//! Limitation: waves a particle took after the last scrape before it ended
//! are never counted (its lane is gone when the next scrape looks). Scrape
//! often enough that this is small; the counter stays monotonic either way.

use std::collections::{BTreeMap, HashMap};

/// One live lane at a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// Its particle's spawn sequence: unique on the Machine, so a particle
    /// spawned again at the same Point is a new lane, not a shrunken one.
    pub seq: u64,
    /// The Star its particle lives on.
    pub star: usize,
    /// Letters its particle took off it so far.
    pub taken: u64,
}

/// The running totals, and each live lane's count at the last scrape.
#[derive(Debug, Default)]
pub struct WavesTaken {
    /// By spawn sequence; lanes not seen at a scrape are forgotten then.
    last: HashMap<u64, u64>,
    /// By Star.
    totals: BTreeMap<usize, u64>,
}

impl WavesTaken {
    /// Adds what each of `lanes` (the live ones, now) took since the last
    /// call; a lane not seen before counts everything it took.
    pub fn update(&mut self, lanes: impl IntoIterator<Item = Lane>) {
        let mut now: HashMap<u64, u64> = HashMap::with_capacity(self.last.len());
        for lane in lanes {
            let before = now
                .get(&lane.seq)
                .or_else(|| self.last.get(&lane.seq))
                .copied()
                .unwrap_or(0);
            // `taken` only grows; were it ever to go back, add nothing
            // rather than make the counter go back too.
            let delta = lane.taken.saturating_sub(before);
            let total = self.totals.entry(lane.star).or_default();
            *total = total.saturating_add(delta);
            now.insert(lane.seq, lane.taken.max(before));
        }
        self.last = now;
    }

    /// Waves taken on Star `star` since the daemon started (as far as
    /// scrapes saw them).
    #[cfg(test)]
    pub fn total(&self, star: usize) -> u64 {
        self.totals.get(&star).copied().unwrap_or(0)
    }

    /// Every Star that took any wave, with its total.
    pub fn totals(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.totals.iter().map(|(s, n)| (*s, *n))
    }

    /// Lanes remembered (live at the last scrape).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(seq: u64, star: usize, taken: u64) -> Lane {
        Lane { seq, star, taken }
    }

    #[test]
    fn deltas_add_up_per_star() {
        let mut w = WavesTaken::default();
        w.update([lane(1, 0, 5), lane(2, 1, 3)]);
        assert_eq!((w.total(0), w.total(1)), (5, 3));
        w.update([lane(1, 0, 9), lane(2, 1, 3)]);
        assert_eq!((w.total(0), w.total(1)), (9, 3));
        assert_eq!(w.totals().collect::<Vec<_>>(), vec![(0, 9), (1, 3)]);
        assert_eq!(w.total(7), 0);
    }

    #[test]
    fn a_particle_that_ends_keeps_its_count_in_the_total() {
        let mut w = WavesTaken::default();
        w.update([lane(1, 0, 100), lane(2, 0, 1)]);
        assert_eq!(w.total(0), 101);
        // Lane 1 ended: the sum of live lanes fell to 2, the total did not.
        w.update([lane(2, 0, 2)]);
        assert_eq!(w.total(0), 102);
        assert_eq!(w.remembered(), 1);
    }

    #[test]
    fn a_new_particle_at_the_same_point_is_a_new_lane() {
        let mut w = WavesTaken::default();
        w.update([lane(1, 0, 50)]);
        // Respawned (sequence 2) and already took 7: all 7 are new.
        w.update([lane(2, 0, 7)]);
        assert_eq!(w.total(0), 57);
    }

    #[test]
    fn a_count_that_goes_back_adds_nothing_and_is_not_counted_twice() {
        let mut w = WavesTaken::default();
        w.update([lane(1, 0, 10)]);
        w.update([lane(1, 0, 4)]);
        assert_eq!(w.total(0), 10);
        // Back at 12: only 2 more than the highest count seen.
        w.update([lane(1, 0, 12)]);
        assert_eq!(w.total(0), 12);
        // The same lane twice in one scrape counts once.
        w.update([lane(1, 0, 15), lane(1, 0, 15)]);
        assert_eq!(w.total(0), 15);
    }
}
