//! Splitting a GEMM's output into blocks for the rayon pool, shared by every kernel.

use rayon::prelude::*;

/// A raw pointer shared by work items that write disjoint parts of one buffer.
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only used where every work item writes a region no other item touches.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Splits an `m`-row output into blocks of `rows_per_item` rows × one 16-column panel
/// and runs `item(rows, panel)` for each across the current rayon pool. Consecutive items
/// share their rows, so a worker walking a range keeps those rows of `A` in cache.
pub(crate) fn for_each_block(
    m: usize,
    panels: usize,
    rows_per_item: usize,
    item: impl Fn(std::ops::Range<usize>, usize) + Sync,
) {
    (0..m.div_ceil(rows_per_item) * panels)
        .into_par_iter()
        .with_min_len(4)
        .for_each(|index| {
            let (row_item, panel) = (index / panels, index % panels);
            item(
                row_item * rows_per_item..m.min((row_item + 1) * rows_per_item),
                panel,
            )
        });
}
