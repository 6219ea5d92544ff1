//! Spreading a batch's CPU work over the cores: contiguous slices, one scoped thread each,
//! answers joined in order. Small inputs stay on the calling thread, where a thread would cost
//! more than it saves.

/// Below this many items per core, work is not split.
pub const MIN_SLICE: usize = 64;

/// Runs `f` on contiguous slices of `items`, one per core when there are enough items, and
/// answers per slice in order: its length, and `None` if it panicked.
pub fn per_core<T: Sync, U: Send>(
    items: &[T],
    f: impl Fn(&[T]) -> U + Sync,
) -> Vec<(usize, Option<U>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(MIN_SLICE);
    if items.len() <= chunk {
        return vec![(items.len(), Some(f(items)))];
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| (c.len(), scope.spawn(move || f(c))))
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n, h.join().ok()))
            .collect()
    })
}

/// `f` on every item, in order, large inputs across the cores; `None` if any slice panicked.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Option<Vec<U>> {
    let mut out = Vec::with_capacity(items.len());
    for (_, part) in per_core(items, |c| c.iter().map(&f).collect::<Vec<U>>()) {
        out.extend(part?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_order_whether_split_or_not() {
        for n in [0, 1, MIN_SLICE, 10 * MIN_SLICE + 7] {
            let items: Vec<usize> = (0..n).collect();
            let squares = map(&items, |x| x * x).unwrap();
            assert_eq!(squares, items.iter().map(|x| x * x).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panicking_slice_is_reported_not_propagated() {
        let items: Vec<usize> = (0..10 * MIN_SLICE).collect();
        let out = map(&items, |&x| {
            assert!(x != 3, "boom");
            x
        });
        assert!(out.is_none());
    }
}
