//! The IDs or MRNs waiting for their Patient lookup, in one text buffer. A cohort is read
//! up front and can be large (a quarter's group of 100,000 MRNs): as a queue of `String`s
//! it cost about 60 bytes an MRN (the queue's slot and a heap allocation each), which was
//! the largest part of a large crawl's memory that grows with the cohort; here an MRN
//! costs its bytes and one span.

use std::collections::VecDeque;

#[derive(Default)]
pub struct IdQueue {
    /// Every ID ever queued, back to back (only grows; a crawl queues each ID about once).
    text: String,
    /// Where each waiting ID is in `text`, in queue order.
    spans: VecDeque<(usize, usize)>,
}

impl IdQueue {
    fn span_of(&mut self, id: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(id);
        (start, id.len())
    }

    pub fn push_back(&mut self, id: &str) {
        let span = self.span_of(id);
        self.spans.push_back(span);
    }

    pub fn push_front(&mut self, id: &str) {
        let span = self.span_of(id);
        self.spans.push_front(span);
    }

    pub fn front(&self) -> Option<&str> {
        let &(start, len) = self.spans.front()?;
        self.text.get(start..start + len)
    }

    pub fn pop_front(&mut self) -> Option<String> {
        let id = self.front().map(str::to_string);
        self.spans.pop_front();
        id
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_in_first_out_and_put_back_in_front() {
        let mut q = IdQueue::default();
        assert!(q.is_empty() && q.front().is_none() && q.pop_front().is_none());
        for id in ["10000001", "é-2", ""] {
            q.push_back(id);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_front().as_deref(), Some("10000001"));
        q.push_front("back");
        assert_eq!(q.front(), Some("back"));
        let rest: Vec<String> = std::iter::from_fn(|| q.pop_front()).collect();
        assert_eq!(rest, ["back", "é-2", ""]);
        assert!(q.is_empty());
    }
}
