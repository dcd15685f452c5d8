//! The sorting algorithm of `builtins.sort`: current CppNix's PeekSort (a
//! natural merge sort after Munro and Wild, "Nearly-Optimal Mergesorts",
//! ESA 2018), reproduced step for step.
//!
//! Why not any stable sort: for a comparator that is a strict weak ordering
//! every stable sort gives the same list, but nixpkgs also sorts with
//! comparators that are not (`a: b: a <= b`, `a: b: true`), and then the
//! result depends on which comparisons the algorithm makes and how it acts
//! on their answers. That decides which element comes first, and so
//! derivation paths. Errors and `trace` calls raised by the comparator also
//! show the comparison order. So this module makes exactly current CppNix's
//! comparisons, in its order, with its arguments, and moves elements exactly
//! as it does:
//!
//! - lists of 0 or 1 elements are left alone; 2 elements `[a b]` cost one
//!   call `less(b, a)`, swapped when true;
//! - otherwise `sort_range` sorts `v[begin..end]` knowing that
//!   `v[begin..left_run_end]` and `v[right_run_begin..end]` are sorted runs
//!   (the whole list starts with both runs empty);
//! - a range of at most 16 elements (`INSERTION_SORT_MAX`, libstdc++'s
//!   threshold too) goes to a plain insertion sort, known runs or not: each
//!   element moves left while `less(it, its left neighbour)` holds;
//! - otherwise the range is cut at `middle = begin + len / 2`: if a known
//!   run covers the middle, the rest is sorted and merged with it;
//!   otherwise the run through `v[middle - 1]` and `v[middle]` is found
//!   ("peeking"): `less(v[middle], v[middle - 1])` chooses a weakly
//!   increasing run (`!less(next, previous)`) or a strictly decreasing one
//!   (`less(next, previous)`, reversed in place once found); it is extended
//!   to the left from `middle - 1` down to `left_run_end`, then to the right
//!   from `middle - 1` up to `right_run_begin` (so the peek comparison is
//!   made again, twice); the range is split at whichever end of that run is
//!   nearer the middle (the right end on a tie), both halves are sorted,
//!   left first, and merged;
//! - a merge copies the range to a buffer and takes the left element unless
//!   `less(right, left)`; no galloping, no shortcut for runs already in order.
//!
//! The comparator may fail (a Nix error): the first error ends the sort and
//! is returned, the slice is then in an unspecified order. Elements are
//! `Copy` (the evaluator sorts references to its values), so moving them
//! costs nothing and no comparison allocates; the merge buffer is allocated
//! once per sort. Recursion depth is O(log n): each call either halves its
//! range or splits off a run that covers its middle.

/// Ranges up to this length are insertion-sorted (CppNix's threshold).
const INSERTION_SORT_MAX: usize = 16;

/// Sorts `v` with `less`, making exactly the comparisons current CppNix's
/// `builtins.sort` makes, in the same order; stops at the first error.
pub fn peek_sort<T: Copy, E>(v: &mut [T], less: impl FnMut(T, T) -> Result<bool, E>) -> Result<(), E> {
    let mut sorter = PeekSort { less, buffer: Vec::new() };
    match v.len() {
        0 | 1 => Ok(()),
        2 => {
            if (sorter.less)(v[1], v[0])? {
                v.swap(0, 1);
            }
            Ok(())
        }
        n => {
            sorter.buffer.reserve_exact(n);
            sorter.sort_range(v, 0, n, 0, n)
        }
    }
}

struct PeekSort<T, F> {
    less: F,
    /// Room for the whole list, reused by every merge.
    buffer: Vec<T>,
}

impl<T: Copy, E, F: FnMut(T, T) -> Result<bool, E>> PeekSort<T, F> {
    /// Sorts `v[begin..end]`, given that `v[begin..left_run_end]` and
    /// `v[right_run_begin..end]` are already sorted.
    ///
    /// Every call that goes past the first test has `begin <= left_run_end <
    /// end`, `begin < right_run_begin <= end` and `left_run_end <=
    /// right_run_begin`; a call whose range is empty or already one run
    /// returns at that test, whatever its other bounds.
    fn sort_range(
        &mut self,
        v: &mut [T],
        begin: usize,
        end: usize,
        left_run_end: usize,
        right_run_begin: usize,
    ) -> Result<(), E> {
        if left_run_end == end || right_run_begin == begin {
            return Ok(());
        }
        let len = end - begin;
        if len <= INSERTION_SORT_MAX {
            return self.insertion_sort(&mut v[begin..end]);
        }
        let middle = begin + len / 2;
        if middle <= left_run_end {
            // The left run covers the middle: sort what follows it (its first
            // element is a run of one), then merge.
            self.sort_range(v, left_run_end, end, left_run_end + 1, right_run_begin)?;
            return self.merge(v, begin, left_run_end, end);
        }
        if middle >= right_run_begin {
            self.sort_range(v, begin, right_run_begin, left_run_end, right_run_begin - 1)?;
            return self.merge(v, begin, right_run_begin, end);
        }
        // The run through v[middle - 1] and v[middle] is v[i..j].
        let (i, j) = if !(self.less)(v[middle], v[middle - 1])? {
            let i = self.run_start(v, left_run_end, middle, false)?;
            let j = self.run_end(v, middle - 1, right_run_begin, false)?;
            (i, j)
        } else {
            let i = self.run_start(v, left_run_end, middle, true)?;
            let j = self.run_end(v, middle - 1, right_run_begin, true)?;
            // Strictly decreasing, so reversing keeps the sort stable.
            v[i..j].reverse();
            (i, j)
        };
        if i == begin && j == end {
            return Ok(());
        }
        if middle - i < j - middle {
            // Split at the run's start. When i == left_run_end the left part
            // is one run and returns at once (its right bound is then unused,
            // hence saturating: i may be 0).
            self.sort_range(v, begin, i, left_run_end, i.saturating_sub(1))?;
            self.sort_range(v, i, end, j, right_run_begin)?;
            self.merge(v, begin, i, end)
        } else {
            // Split at the run's end.
            self.sort_range(v, begin, j, left_run_end, i)?;
            self.sort_range(v, j, end, j + 1, right_run_begin)?;
            self.merge(v, begin, j, end)
        }
    }

    /// The smallest `i >= lo` such that `v[i..hi]` is one run (`lo < hi`):
    /// strictly decreasing (`less(v[k], v[k - 1])` for each step) when
    /// `decreasing`, else weakly increasing (`!less(v[k], v[k - 1])`);
    /// compares from the right end leftwards.
    fn run_start(&mut self, v: &[T], lo: usize, hi: usize, decreasing: bool) -> Result<usize, E> {
        debug_assert!(lo < hi);
        let mut k = hi - 1;
        while k > lo && (self.less)(v[k], v[k - 1])? == decreasing {
            k -= 1;
        }
        Ok(k)
    }

    /// The largest `j <= hi` such that `v[lo..j]` is one run (`lo < hi`), as
    /// `run_start`; compares from the left end rightwards.
    fn run_end(&mut self, v: &[T], lo: usize, hi: usize, decreasing: bool) -> Result<usize, E> {
        debug_assert!(lo < hi);
        let mut k = lo;
        while k + 1 != hi && (self.less)(v[k + 1], v[k])? == decreasing {
            k += 1;
        }
        Ok(k + 1)
    }

    /// Straight insertion sort by adjacent swaps (no binary search, so that
    /// an inconsistent comparator sees CppNix's comparisons).
    fn insertion_sort(&mut self, v: &mut [T]) -> Result<(), E> {
        for current in 1..v.len() {
            let mut k = current;
            while k > 0 && (self.less)(v[k], v[k - 1])? {
                v.swap(k, k - 1);
                k -= 1;
            }
        }
        Ok(())
    }

    /// Merges the sorted `v[begin..middle]` and `v[middle..end]`; on equal
    /// elements (`!less(right, left)`) the left one comes first.
    fn merge(&mut self, v: &mut [T], begin: usize, middle: usize, end: usize) -> Result<(), E> {
        self.buffer.clear();
        self.buffer.extend_from_slice(&v[begin..end]);
        let split = middle - begin;
        let (mut left, mut right, mut out) = (0, split, begin);
        while left < split && right < self.buffer.len() {
            let (l, r) = (self.buffer[left], self.buffer[right]);
            if !(self.less)(r, l)? {
                v[out] = l;
                left += 1;
            } else {
                v[out] = r;
                right += 1;
            }
            out += 1;
        }
        // What is left of the right part is already in place.
        v[out..out + (split - left)].copy_from_slice(&self.buffer[left..split]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Sorts `v` with `less`, returning the sorted list and every comparison
    /// made, as (first argument, second argument).
    fn sort_logged(v: &[u32], less: impl Fn(u32, u32) -> bool) -> (Vec<u32>, Vec<(u32, u32)>) {
        let mut v = v.to_vec();
        let mut log = Vec::new();
        peek_sort::<u32, Infallible>(&mut v, |a, b| {
            log.push((a, b));
            Ok(less(a, b))
        })
        .unwrap();
        (v, log)
    }

    #[test]
    fn tiny_lists() {
        assert_eq!(sort_logged(&[], |a, b| a < b), (vec![], vec![]));
        assert_eq!(sort_logged(&[7], |a, b| a < b), (vec![7], vec![]));
        // Two elements: one comparison, second against first.
        assert_eq!(sort_logged(&[1, 2], |a, b| a < b), (vec![1, 2], vec![(2, 1)]));
        assert_eq!(sort_logged(&[2, 1], |a, b| a < b), (vec![1, 2], vec![(1, 2)]));
    }

    #[test]
    fn insertion_sort_comparisons() {
        // [3 1 2]: 1 moves left past 3 and reaches the front; 2 moves past 3,
        // then stops at 1.
        assert_eq!(sort_logged(&[3, 1, 2], |a, b| a < b), (vec![1, 2, 3], vec![(1, 3), (2, 3), (2, 1)]));
        // Sixteen elements are still insertion-sorted: an ascending list
        // costs one comparison per neighbour pair.
        let up: Vec<u32> = (0..16).collect();
        let (sorted, log) = sort_logged(&up, |a, b| a < b);
        assert_eq!(sorted, up);
        assert_eq!(log, (1..16).map(|k| (k, k - 1)).collect::<Vec<_>>());
    }

    #[test]
    fn seventeen_ascending_is_one_run() {
        // 17 > 16: peek at middle 8: less(v8, v7) is false, so the run is weakly
        // increasing; extend left from 7 (v7 vs v6 ... v1 vs v0), then right
        // from 7 (v8 vs v7 again ... v16 vs v15): one run, nothing to merge.
        let up: Vec<u32> = (0..17).collect();
        let (sorted, log) = sort_logged(&up, |a, b| a < b);
        assert_eq!(sorted, up);
        let mut expected = vec![(8, 7)];
        expected.extend((1..8).rev().map(|k| (k, k - 1)));
        expected.extend((8..17).map(|k| (k, k - 1)));
        assert_eq!(log, expected);
    }

    #[test]
    fn seventeen_descending_is_reversed() {
        // As above, but less(v8, v7) is true: a strictly decreasing run over
        // the whole list, reversed in place.
        let down: Vec<u32> = (0..17).rev().collect();
        let (sorted, log) = sort_logged(&down, |a, b| a < b);
        assert_eq!(sorted, (0..17).collect::<Vec<_>>());
        let mut expected = vec![(down[8], down[7])];
        expected.extend((1..8).rev().map(|k| (down[k], down[k - 1])));
        expected.extend((8..17).map(|k| (down[k], down[k - 1])));
        assert_eq!(log, expected);
    }

    #[test]
    fn twenty_with_a_dip_splits_and_merges() {
        // v = [5 6 7 8 9 10 11 12 13 14 | 0 1 2 3 4 15 16 17 18 19], middle 10.
        // Peek: less(0, 14) is true, a decreasing run: extending left compares
        // (14, 13), false, so i = 9; extending right compares (0, 14), true,
        // then (1, 0), false, so j = 11. v[9..11] = [14 0] is reversed to
        // [0 14]. middle - i = 1 is not < j - middle = 1: split at j = 11.
        // Left v[0..11] = [5 .. 13 0 14] is insertion-sorted: (6,5) .. (13,12)
        // false, then 0 moves to the front past 13 .. 5, then (14,13) false.
        // Right v[11..20] = [1 2 3 4 15 .. 19]: eight false comparisons.
        // Merge [0 5 .. 14] with [1 2 3 4 15 .. 19] by less(right, left).
        let input = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0, 1, 2, 3, 4, 15, 16, 17, 18, 19];
        let (sorted, log) = sort_logged(&input, |a, b| a < b);
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        let mut expected = vec![(0, 14), (14, 13), (0, 14), (1, 0)];
        expected.extend((6..=13).map(|k| (k, k - 1)));
        expected.extend((5..=13).rev().map(|k| (0, k)));
        expected.push((14, 13));
        expected.extend([(2, 1), (3, 2), (4, 3), (15, 4), (16, 15), (17, 16), (18, 17), (19, 18)]);
        expected.extend([(1, 0), (1, 5), (2, 5), (3, 5), (4, 5)]);
        expected.extend((5..=14).map(|k| (15, k)));
        assert_eq!(log, expected);
    }

    /// `(k, k - 1)` for each k of `range`, in its order: the comparisons of
    /// a run extended over ascending values.
    fn steps(range: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
        range.map(|k| (k, k - 1)).collect()
    }

    #[test]
    fn forty_with_a_left_run_covering_the_middle() {
        // v = [200 .. 214 | 100 .. 119 | 50 .. 54] (15 + 20 + 5), middle 20.
        // Peek (105, 104): weakly increasing. Extend left from 19: (104, 103)
        // .. (101, 100), then (100, 214) is not "not less": i = 15. Extend
        // right: (105, 104) .. (119, 118), then (50, 119) stops: j = 35.
        // 20 - 15 < 35 - 20: split at i. Left v[0..15]: insertion, 14 false
        // comparisons. Right v[15..40] with the run v[15..35] known: 25
        // elements, its middle 27 lies in the run, so v[35..40] is sorted
        // (insertion, 4 comparisons) and merged with the run: (50, 100) ..
        // (54, 100), right side exhausted. Last, merge v[0..15] with
        // v[15..40]: every right element is less than 200.
        let input: Vec<u32> = (200..215).chain(100..120).chain(50..55).collect();
        let (sorted, log) = sort_logged(&input, |a, b| a < b);
        let mut expected_sorted = input.clone();
        expected_sorted.sort();
        assert_eq!(sorted, expected_sorted);
        let mut expected = vec![(105, 104)];
        expected.extend(steps((101..=104).rev()));
        expected.push((100, 214));
        expected.extend(steps(105..=119));
        expected.push((50, 119));
        expected.extend(steps(201..=214));
        expected.extend(steps(51..=54));
        expected.extend((50..=54).map(|k| (k, 100)));
        expected.extend((50..=54).chain(100..=119).map(|k| (k, 200)));
        assert_eq!(log, expected);
    }

    #[test]
    fn forty_with_a_right_run_covering_the_middle() {
        // v = [200 .. 204 | 100 .. 119 | 50 .. 64] (5 + 20 + 15), middle 20.
        // Peek (115, 114); extend left to i = 5 ((100, 204) stops), right to
        // j = 25 ((50, 119) stops). 20 - 5 is not < 25 - 20: split at j.
        // Left v[0..25] with the run v[5..25] known: its middle 12 lies in
        // the run, so v[0..5] is insertion-sorted and merged with the run
        // (every run element is less than 200). Right v[25..40]: insertion,
        // 14 false comparisons. Last merge: every right element < 100.
        let input: Vec<u32> = (200..205).chain(100..120).chain(50..65).collect();
        let (sorted, log) = sort_logged(&input, |a, b| a < b);
        let mut expected_sorted = input.clone();
        expected_sorted.sort();
        assert_eq!(sorted, expected_sorted);
        let mut expected = vec![(115, 114)];
        expected.extend(steps((101..=114).rev()));
        expected.push((100, 204));
        expected.extend(steps(115..=119));
        expected.push((50, 119));
        expected.extend(steps(201..=204));
        expected.extend((100..=119).map(|k| (k, 200)));
        expected.extend(steps(51..=64));
        expected.extend((50..=64).map(|k| (k, 100)));
        assert_eq!(log, expected);
    }

    #[test]
    fn always_true_reverses() {
        // Insertion sort moves every element to the front; above 16 elements
        // the peek sees one strictly decreasing run and reverses it.
        for n in [2u32, 3, 16, 17, 20, 100] {
            let input: Vec<u32> = (0..n).collect();
            let (sorted, _) = sort_logged(&input, |_, _| true);
            assert_eq!(sorted, (0..n).rev().collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn always_false_keeps_order() {
        for n in [2u32, 3, 16, 17, 20, 100] {
            let input: Vec<u32> = (0..n).rev().collect();
            let (sorted, log) = sort_logged(&input, |_, _| false);
            assert_eq!(sorted, input, "n = {n}");
            assert!(log.len() < 2 * n as usize);
        }
    }

    /// A small deterministic generator (xorshift64*), so the tests need no
    /// random-number crate and always see the same inputs.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn strict_weak_orderings_give_the_stable_sort() {
        // With a valid comparator the result is the one stable sort, so it
        // must equal the standard library's; keys repeat to test stability,
        // the low bits of each element are its original index.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            let n = (rng.next() % 300) as usize;
            let range = 1 + rng.next() % if round % 2 == 0 { 8 } else { 1000 };
            let mut input: Vec<u32> = (0..n as u32).map(|i| ((rng.next() % range) as u32) << 16 | i).collect();
            if round % 5 == 0 {
                // Mostly sorted input with long runs, up and down.
                input.sort_unstable_by_key(|x| x >> 16);
                let cut = n / 3;
                input[cut..].reverse();
            }
            let (sorted, log) = sort_logged(&input, |a, b| a >> 16 < b >> 16);
            let mut expected = input.clone();
            expected.sort_by_key(|x| x >> 16);
            assert_eq!(sorted, expected, "round {round}");
            // O(n log n) comparisons.
            let bound = 2 * n * (usize::BITS - n.leading_zeros()) as usize + n;
            assert!(log.len() <= bound, "round {round}: {} comparisons for {n}", log.len());
        }
    }

    #[test]
    fn any_comparator_gives_a_permutation() {
        let mut rng = Rng(42);
        for round in 0..200 {
            let n = (rng.next() % 200) as u32;
            let input: Vec<u32> = (0..n).collect();
            let mut answers = Rng(round + 1);
            let mut v = input.clone();
            peek_sort::<u32, Infallible>(&mut v, |_, _| Ok(answers.next() % 2 == 0)).unwrap();
            v.sort_unstable();
            assert_eq!(v, input, "round {round}");
        }
    }

    #[test]
    fn first_error_stops_the_sort() {
        let input: Vec<u32> = (0..50).rev().collect();
        let mut v = input.clone();
        let mut calls = 0;
        let result = peek_sort(&mut v, |a: u32, b: u32| {
            calls += 1;
            if calls == 7 { Err(format!("{a} {b}")) } else { Ok(a < b) }
        });
        assert!(result.is_err());
        assert_eq!(calls, 7);
    }
}
