//! `check --read-data-subset`: which packs one check reads, with restic's
//! semantics. `N/M` reads part N of M (1 ≤ N ≤ M): the packs whose id, read
//! as a number from its first 32 bits, is N−1 modulo M, so the M parts are
//! disjoint and together cover every pack, and a pack stays in its part
//! from run to run. `P%` reads a random P % of the packs, chosen anew each
//! run.

use std::fmt;
use std::str::FromStr;

/// A part of the packs (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataSubset {
    /// Part `n` of `m`, 1-based.
    Part { n: u32, m: u32 },
    /// A random fraction, in (0, 100] percent.
    Percent(f64),
}

impl DataSubset {
    /// Whether the pack `id` (hex) is in this subset.
    pub fn contains(&self, id: &str) -> bool {
        match *self {
            DataSubset::Part { n, m } => {
                let bucket = id
                    .get(..8)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .unwrap_or(0);
                bucket % m == n - 1
            }
            DataSubset::Percent(p) => rand::random::<f64>() * 100.0 < p,
        }
    }
}

impl FromStr for DataSubset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?}: expected a percentage such as 10%"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "{s:?}: the percentage must be above 0 and at most 100"
                ));
            }
            return Ok(DataSubset::Percent(p));
        }
        let (n, m) = s.split_once('/').ok_or_else(|| {
            format!("{s:?}: expected N/M (part N of M, e.g. 1/7) or a percentage (e.g. 10%)")
        })?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?}: N and M must be whole numbers"))
        };
        let (n, m) = (parse(n)?, parse(m)?);
        if m == 0 || n == 0 || n > m {
            return Err(format!("{s:?}: need 1 ≤ N ≤ M"));
        }
        Ok(DataSubset::Part { n, m })
    }
}

impl fmt::Display for DataSubset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSubset::Part { n, m } => write!(f, "{n}/{m}"),
            DataSubset::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts_and_percentages() {
        assert_eq!("2/7".parse(), Ok(DataSubset::Part { n: 2, m: 7 }));
        assert_eq!("10%".parse(), Ok(DataSubset::Percent(10.0)));
        for bad in ["0/3", "4/3", "1/0", "x/3", "0%", "101%", "3", ""] {
            assert!(bad.parse::<DataSubset>().is_err(), "{bad}");
        }
        assert_eq!(DataSubset::Part { n: 1, m: 4 }.to_string(), "1/4");
    }

    #[test]
    fn parts_are_disjoint_and_cover_every_pack() {
        let ids: Vec<String> = (0..500u64)
            .map(|i| format!("{:064x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        for id in &ids {
            let hits = (1..=5)
                .filter(|n| DataSubset::Part { n: *n, m: 5 }.contains(id))
                .count();
            assert_eq!(hits, 1, "{id}");
        }
        assert!(ids.iter().all(|id| DataSubset::Percent(100.0).contains(id)));
    }
}
