//! Per-task statistics (docs/hydration.md#statistics-table): what happened to each examined item,
//! counted per input resource and per item, and the table printed after a task. Counting and
//! formatting only.

use crate::console::thousands;

/// What happened to one examined item (a reference, an attachment, a searched role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing to do: not a reference of the wanted type, no URL, a type we do not inline.
    Ignored,
    AlreadyDone,
    NewlyDone,
    /// The server refused or sent something unusable; a rerun will not help.
    FatalError,
    /// Still failing after retries; a rerun may succeed.
    RetryError,
}

const COUNTED: [Status; 4] = [
    Status::AlreadyDone,
    Status::NewlyDone,
    Status::FatalError,
    Status::RetryError,
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    resources: u64,
    items: u64,
    /// Per status of `COUNTED`: (resources with at least one such item, such items).
    counts: [(u64, u64); 4],
}

impl Stats {
    /// One input resource and the statuses of its items (possibly none).
    pub fn add(&mut self, statuses: &[Status]) {
        self.resources += 1;
        self.items += statuses.len() as u64;
        for (i, status) in COUNTED.iter().enumerate() {
            let n = statuses.iter().filter(|s| *s == status).count() as u64;
            if n > 0 {
                self.counts[i].0 += 1;
                self.counts[i].1 += n;
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.resources += other.resources;
        self.items += other.items;
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
    }

    /// (resources, items) with `status`; for `Ignored`, the items only.
    pub fn count(&self, status: Status) -> (u64, u64) {
        match COUNTED.iter().position(|s| *s == status) {
            Some(i) => self.counts[i],
            None => {
                let counted: u64 = self.counts.iter().map(|c| c.1).sum();
                (0, self.items - counted)
            }
        }
    }

    /// The table, lines without trailing spaces: a label column, then the resource and item
    /// columns right-aligned, each cell padded by one space on both sides (the Python tool's
    /// borderless `rich` table). `adjective` is `downloaded` or `inlined`.
    pub fn table(&self, resource_header: &str, item_header: &str, adjective: &str) -> String {
        let (left, right) = if resource_header == item_header {
            (
                format!("Source {resource_header}"),
                format!("Target {item_header}"),
            )
        } else {
            (resource_header.to_string(), item_header.to_string())
        };
        let count = |s| self.count(s);
        let mut rows: Vec<(String, u64, u64)> =
            vec![("Total examined".into(), self.resources, self.items)];
        let (r, i) = count(Status::AlreadyDone);
        if i > 0 {
            rows.push((format!("Already {adjective}"), r, i));
        }
        let (r, i) = count(Status::NewlyDone);
        rows.push((format!("Newly {adjective}"), r, i));
        let (r, i) = count(Status::FatalError);
        if i > 0 {
            rows.push(("Fatal errors".into(), r, i));
        }
        let (r, i) = count(Status::RetryError);
        if i > 0 {
            rows.push(("Retried but gave up".into(), r, i));
        }
        let cells: Vec<(String, String, String)> = rows
            .into_iter()
            .map(|(label, r, i)| (label, thousands(r), thousands(i)))
            .collect();
        let w0 = cells.iter().map(|c| c.0.chars().count()).max().unwrap_or(0);
        let w1 = cells
            .iter()
            .map(|c| c.1.len())
            .chain([left.chars().count()])
            .max()
            .unwrap_or(0);
        let w2 = cells
            .iter()
            .map(|c| c.2.len())
            .chain([right.chars().count()])
            .max()
            .unwrap_or(0);
        let line = |a: &str, b: &str, c: &str| {
            format!(" {a:<w0$}  {b:>w1$}  {c:>w2$}")
                .trim_end()
                .to_string()
        };
        let mut lines = vec![line("", &left, &right)];
        lines.extend(cells.iter().map(|(a, b, c)| line(a, b, c)));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    #[test]
    fn spec_example() {
        let mut stats = Stats::default();
        stats.add(&[AlreadyDone]);
        stats.add(&[NewlyDone]);
        assert_eq!(
            stats.table("MedicationRequests", "Medications", "downloaded"),
            "                     MedicationRequests  Medications\n \
             Total examined                       2            2\n \
             Already downloaded                   1            1\n \
             Newly downloaded                     1            1"
        );
    }

    #[test]
    fn optional_rows_and_same_headers() {
        let mut stats = Stats::default();
        stats.add(&[NewlyDone, NewlyDone, Ignored, FatalError]);
        stats.add(&[RetryError, FatalError, FatalError]);
        stats.add(&[]);
        assert_eq!(stats.count(Ignored), (0, 1));
        assert_eq!(stats.count(FatalError), (2, 3));
        let table = stats.table("Observations", "Observations", "downloaded");
        assert_eq!(
            table,
            "                      Source Observations  Target Observations\n \
             Total examined                         3                    7\n \
             Newly downloaded                       1                    2\n \
             Fatal errors                           2                    3\n \
             Retried but gave up                    1                    1"
        );
        let mut big = Stats::default();
        for _ in 0..1234 {
            big.add(&[Ignored]);
        }
        let mut total = Stats::default();
        total.merge(&big);
        total.merge(&big);
        let table = total.table("DocumentReferences", "Attachments", "inlined");
        assert_eq!(
            table,
            "                 DocumentReferences  Attachments\n \
             Total examined               2,468        2,468\n \
             Newly inlined                    0            0"
        );
    }
}
