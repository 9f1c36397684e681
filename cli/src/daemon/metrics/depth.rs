//! The spread of lane depths (letters waiting) over live particles.
//!
//! Depths are sampled at each scrape, so a Prometheus summary's `_sum` and
//! `_count` over time would mean nothing: these are plain gauges, one per
//! quantile, computed by nearest rank (each is a depth some lane has).

/// Quantiles of lane depth at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depths {
    /// The median.
    pub p50: usize,
    /// 90% of lanes hold at most this many letters.
    pub p90: usize,
    /// 99% of lanes hold at most this many letters.
    pub p99: usize,
    /// The deepest lane.
    pub max: usize,
    /// Letters waiting in all lanes.
    pub sum: usize,
}

impl Depths {
    /// The quantiles of `depths` (reordered); all 0 when there is none.
    pub fn of(depths: &mut [usize]) -> Depths {
        depths.sort_unstable();
        Depths {
            p50: nearest_rank(depths, 500),
            p90: nearest_rank(depths, 900),
            p99: nearest_rank(depths, 990),
            max: depths.last().copied().unwrap_or(0),
            sum: depths.iter().fold(0usize, |a, d| a.saturating_add(*d)),
        }
    }
}

/// The smallest value with at least `per_mille`/1000 of `sorted` at or
/// below it; 0 for none.
fn nearest_rank(sorted: &[usize], per_mille: usize) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len().saturating_mul(per_mille))
        .div_ceil(1000)
        .max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_zero() {
        assert_eq!(Depths::of(&mut []), Depths::default());
    }

    #[test]
    fn one_lane_is_every_quantile() {
        let d = Depths::of(&mut [4]);
        assert_eq!((d.p50, d.p90, d.p99, d.max, d.sum), (4, 4, 4, 4, 4));
    }

    #[test]
    fn nearest_rank_over_a_hundred_lanes() {
        // Depths 1..=100, shuffled: the q-quantile is 100q.
        let mut v: Vec<usize> = (1..=100).rev().collect();
        v.swap(3, 70);
        let d = Depths::of(&mut v);
        assert_eq!((d.p50, d.p90, d.p99, d.max), (50, 90, 99, 100));
        assert_eq!(d.sum, 5050);
    }

    #[test]
    fn a_few_deep_lanes_show_in_the_tail_not_the_median() {
        // 95 idle lanes, 5 with a backlog.
        let mut v = vec![0; 95];
        v.extend([10, 20, 30, 40, 1000]);
        let d = Depths::of(&mut v);
        assert_eq!((d.p50, d.p90, d.p99, d.max), (0, 0, 40, 1000));
        // Two lanes: the median is the smaller (rank 1), p90 the larger.
        let d = Depths::of(&mut [7, 3]);
        assert_eq!((d.p50, d.p90), (3, 7));
    }
}
