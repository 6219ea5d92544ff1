//! Row-wise work split across the cores: encoding and scoring fill one output buffer, each
//! thread its own contiguous block of rows, so results come back in input order.

use std::ops::Range;
use std::sync::OnceLock;

/// The cores to use, asked once: `available_parallelism` reads cgroup files on every call,
/// which cost more than scoring a handful of rows.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Calls `work(rows, out_block)` on blocks of at least `min_rows` rows, one per core, where
/// `out_block` is the part of `out` (`width` values per row) that belongs to `rows`.
pub fn for_row_blocks<T: Send>(
    n_rows: usize,
    width: usize,
    out: &mut [T],
    min_rows: usize,
    work: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    debug_assert_eq!(out.len(), n_rows * width);
    if n_rows <= min_rows || width == 0 {
        work(0..n_rows, out);
        return;
    }
    let block = n_rows.div_ceil(threads()).max(min_rows).max(1);
    if n_rows <= block {
        work(0..n_rows, out);
        return;
    }
    let work = &work;
    std::thread::scope(|scope| {
        for (i, out) in out.chunks_mut(block * width).enumerate() {
            let start = i * block;
            scope.spawn(move || work(start..start + out.len() / width, out));
        }
    });
}

/// How many items each core's run holds: at least `min_items`, all of them at or below that.
fn run_length(n: usize, min_items: usize) -> usize {
    n.div_ceil(threads()).max(min_items).max(1)
}

/// `items` cut into contiguous runs of at least `min_items`, one per core (one run at or below
/// `min_items`), in order: owned slices for work that keeps going with its own part of a batch.
pub fn split<T>(mut items: Vec<T>, min_items: usize) -> Vec<Vec<T>> {
    let chunk = run_length(items.len(), min_items);
    if items.len() <= chunk {
        return vec![items];
    }
    let mut runs = Vec::with_capacity(items.len().div_ceil(chunk));
    while items.len() > chunk {
        let tail = items.split_off(items.len() - (items.len() - 1) % chunk - 1);
        runs.push(tail);
    }
    runs.push(items);
    runs.reverse();
    runs
}

/// `f` on every item, each on its own thread (one item: on this thread), answers in order;
/// `None` where `f` panicked on a thread (the others still answer). Meant for the runs of
/// [`split`].
pub fn each<T: Send, U: Send>(items: Vec<T>, f: impl Fn(T) -> U + Sync) -> Vec<Option<U>> {
    if items.len() <= 1 {
        return items.into_iter().map(|i| Some(f(i))).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|i| scope.spawn(move || f(i)))
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    })
}

/// `f` on every item, in order, split across the cores above `min_items`; `None` if any slice
/// panicked.
pub fn map<T: Sync, U: Send>(
    items: &[T],
    min_items: usize,
    f: impl Fn(&T) -> U + Sync,
) -> Option<Vec<U>> {
    let runs = items.chunks(run_length(items.len(), min_items)).collect();
    flatten(
        each(runs, |run: &[T]| run.iter().map(&f).collect()),
        items.len(),
    )
}

/// [`map`] on owned items, each moved into `f` on its core (and freed there).
pub fn map_owned<T: Send, U: Send>(
    items: Vec<T>,
    min_items: usize,
    f: impl Fn(T) -> U + Sync,
) -> Option<Vec<U>> {
    let n = items.len();
    flatten(
        each(split(items, min_items), |run| {
            run.into_iter().map(&f).collect()
        }),
        n,
    )
}

/// The runs' answers in one vector; `None` if any run panicked.
fn flatten<U>(runs: Vec<Option<Vec<U>>>, n: usize) -> Option<Vec<U>> {
    let mut out = Vec::with_capacity(n);
    for run in runs {
        out.extend(run?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_written_once_in_order() {
        let n = 10_001;
        let mut out = vec![0usize; n * 2];
        for_row_blocks(n, 2, &mut out, 7, |rows, block| {
            for (k, r) in rows.enumerate() {
                block[2 * k] += r;
                block[2 * k + 1] += 1;
            }
        });
        assert!(out.chunks(2).enumerate().all(|(r, v)| v == [r, 1]));
    }

    #[test]
    fn map_answers_in_order_whether_split_or_not() {
        for n in [0, 1, 64, 10 * 64 + 7] {
            let items: Vec<usize> = (0..n).collect();
            let squares: Vec<usize> = items.iter().map(|x| x * x).collect();
            assert_eq!(map(&items, 64, |x| x * x).unwrap(), squares);
            assert_eq!(map_owned(items, 64, |x| x * x).unwrap(), squares);
        }
    }

    #[test]
    fn split_keeps_every_item_in_order_in_runs_as_map_cuts_slices() {
        for n in [0usize, 1, 64, 65, 10 * 64 + 7, 10_001] {
            let items: Vec<usize> = (0..n).collect();
            let runs = split(items.clone(), 64);
            assert_eq!(runs.concat(), items, "n = {n}");
            let lengths: Vec<usize> = runs.iter().map(Vec::len).collect();
            let slice_lengths: Vec<usize> = if n == 0 {
                vec![0]
            } else {
                items
                    .chunks(run_length(n, 64))
                    .map(<[usize]>::len)
                    .collect()
            };
            assert_eq!(lengths, slice_lengths, "n = {n}");
            assert!(runs.len() <= threads().max(1));
        }
    }

    #[test]
    fn each_answers_in_order_and_reports_a_panic_in_its_place() {
        let out = each(vec![vec![1, 2], vec![3], vec![4, 5, 6]], |v| {
            v.iter().sum::<i32>()
        });
        assert_eq!(out, vec![Some(3), Some(3), Some(15)]);
        let out = each(vec![1, 2, 3], |x| {
            assert!(x != 2, "boom");
            x * 10
        });
        assert_eq!(out, vec![Some(10), None, Some(30)]);
        assert_eq!(each(vec![7], |x| x + 1), vec![Some(8)]);
    }

    #[test]
    fn a_panicking_slice_is_reported_not_propagated() {
        let items: Vec<usize> = (0..640).collect();
        let out = map(&items, 64, |&x| {
            assert!(x != 3, "boom");
            x
        });
        assert!(out.is_none());
        let out = map_owned(items, 64, |x| {
            assert!(x != 3, "boom");
            x
        });
        assert!(out.is_none());
    }
}
