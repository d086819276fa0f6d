//! Which groups this process exports when a site runs the same batch command as several
//! processes (a Slurm job array or any scheduler's array job): `--shard I/N`, or the array
//! task's own numbers. Groups are dealt round-robin in name order, so every group lands in
//! exactly one shard, and groups added later (new numbers sort last) never move old ones.
//! The connection budget is split the same way: the shards together never exceed it.

use std::fmt;

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error(
        "--shard {0:?} is not of the form I/N with 1 <= I <= N (e.g. --shard 2/3 for the second of three)"
    )]
    Syntax(String),
    #[error(
        "SLURM_ARRAY_TASK_ID={id} with SLURM_ARRAY_TASK_MIN={min} and SLURM_ARRAY_TASK_COUNT={count} do not name one of the array's tasks (arrays must be one range, with or without a step, not a list); pass --shard I/N instead"
    )]
    Slurm {
        id: String,
        min: String,
        count: String,
    },
}

impl Shard {
    /// The whole batch in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `I/N` as a user writes it (1-based).
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let err = || ShardError::Syntax(text.to_string());
        let (i, n) = text.split_once('/').ok_or_else(err)?;
        let i: usize = i.trim().parse().map_err(|_| err())?;
        let n: usize = n.trim().parse().map_err(|_| err())?;
        if n == 0 || i == 0 || i > n || n > 100_000 {
            return Err(err());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }

    /// The shard of a Slurm array task, from the variables Slurm sets for each task
    /// (`lookup` reads one). `None` when the process is not an array task. The task IDs may
    /// start anywhere (`--array=1-3`), so the index counts from `SLURM_ARRAY_TASK_MIN`.
    pub fn from_slurm(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Shard>, ShardError> {
        let (Some(id), Some(count)) = (
            lookup("SLURM_ARRAY_TASK_ID"),
            lookup("SLURM_ARRAY_TASK_COUNT"),
        ) else {
            return Ok(None);
        };
        let min = lookup("SLURM_ARRAY_TASK_MIN").unwrap_or_else(|| "0".to_string());
        // `--array=0-6:2` numbers its tasks 0, 2, 4, 6.
        let step = lookup("SLURM_ARRAY_TASK_STEP").unwrap_or_else(|| "1".to_string());
        let bad = || ShardError::Slurm {
            id: id.clone(),
            min: min.clone(),
            count: count.clone(),
        };
        let id_n: usize = id.trim().parse().map_err(|_| bad())?;
        let min_n: usize = min.trim().parse().map_err(|_| bad())?;
        let count_n: usize = count.trim().parse().map_err(|_| bad())?;
        let step_n: usize = step.trim().parse().map_err(|_| bad())?;
        let offset = id_n.checked_sub(min_n).ok_or_else(bad)?;
        if step_n == 0 || offset % step_n != 0 {
            return Err(bad());
        }
        let index = offset / step_n;
        if count_n == 0 || index >= count_n {
            return Err(bad());
        }
        Ok(Some(Shard {
            index,
            count: count_n,
        }))
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Does the group at `position` (in name order) belong to this shard?
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// This shard's part of `total` connections: the parts add up to `total` (never less
    /// than one each, so more shards than connections oversubscribe by the difference).
    pub fn share(&self, total: usize) -> usize {
        let base = total / self.count;
        let extra = usize::from(self.index < total % self.count);
        (base + extra).max(1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(Shard::parse("2/3").map(|s| s.to_string()), Ok("2/3".into()));
        for bad in ["0/3", "4/3", "1/0", "x", "1/", "/3", "1/3/4", "-1/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_group_in_exactly_one_shard() {
        for n in 1..6 {
            let shards: Vec<Shard> = (1..=n)
                .map(|i| Shard::parse(&format!("{i}/{n}")).unwrap_or(Shard::ALL))
                .collect();
            for position in 0..50 {
                assert_eq!(shards.iter().filter(|s| s.takes(position)).count(), 1);
            }
        }
    }

    #[test]
    fn shares_add_up() {
        for total in 1..30 {
            for n in 1..=total {
                let sum: usize = (1..=n)
                    .map(|i| Shard::parse(&format!("{i}/{n}")).map_or(0, |s| s.share(total)))
                    .sum();
                assert_eq!(sum, total, "{total} over {n}");
            }
        }
        assert_eq!(Shard::parse("3/3").map(|s| s.share(2)), Ok(1));
    }

    #[test]
    fn slurm_variables() {
        let env = |id: &'static str, min: Option<&'static str>, count: &'static str| {
            move |k: &str| match k {
                "SLURM_ARRAY_TASK_ID" => Some(id.to_string()),
                "SLURM_ARRAY_TASK_MIN" => min.map(str::to_string),
                "SLURM_ARRAY_TASK_COUNT" => Some(count.to_string()),
                _ => None,
            }
        };
        assert_eq!(
            Shard::from_slurm(env("0", Some("0"), "3")),
            Ok(Shard::parse("1/3").ok())
        );
        assert_eq!(
            Shard::from_slurm(env("3", Some("1"), "3")),
            Ok(Shard::parse("3/3").ok())
        );
        assert!(Shard::from_slurm(env("5", Some("1"), "3")).is_err());
        let stepped = |id: &'static str| {
            move |k: &str| match k {
                "SLURM_ARRAY_TASK_ID" => Some(id.to_string()),
                "SLURM_ARRAY_TASK_MIN" => Some("0".to_string()),
                "SLURM_ARRAY_TASK_STEP" => Some("2".to_string()),
                "SLURM_ARRAY_TASK_COUNT" => Some("4".to_string()),
                _ => None,
            }
        };
        let shards: Vec<_> = ["0", "2", "4", "6"]
            .into_iter()
            .map(|id| {
                Shard::from_slurm(stepped(id))
                    .ok()
                    .flatten()
                    .map(|s| s.to_string())
            })
            .collect();
        assert_eq!(
            shards,
            ["1/4", "2/4", "3/4", "4/4"].map(|s| Some(s.to_string()))
        );
        assert!(Shard::from_slurm(stepped("3")).is_err());
        assert_eq!(Shard::from_slurm(|_| None), Ok(None));
    }
}
