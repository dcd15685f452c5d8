//! Closures and topological order over the reference graph.

use std::collections::BTreeSet;

use nivis_formats::{StoreDir, StorePath, StorePathSet};

use crate::error::StoreError;
use crate::store::Store;

/// Which edges a closure follows besides references.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClosureOptions {
    /// Follow referrers instead of references (`--referrers-closure`).
    pub flip: bool,
    /// For each `.drv`, add its valid outputs (`--include-outputs`).
    pub include_outputs: bool,
    /// Add each path's deriver when valid.
    pub include_derivers: bool,
}

/// All paths reachable from `start` (which are included), CppNix's `computeFSClosure`.
pub fn compute_closure(
    store: &dyn Store,
    start: &StorePathSet,
    options: ClosureOptions,
) -> Result<StorePathSet, StoreError> {
    let mut closure = StorePathSet::new();
    let mut pending: Vec<StorePath> = start.iter().cloned().collect();
    while let Some(path) = pending.pop() {
        if closure.contains(&path) {
            continue;
        }
        let mut next = StorePathSet::new();
        if options.flip {
            next.extend(store.query_referrers(&path)?);
            if options.include_outputs {
                next.extend(store.query_valid_derivers(&path)?);
            }
        } else {
            let info = store
                .query_path_info(&path)?
                .ok_or_else(|| StoreError::InvalidPath(store.print_store_path(&path)))?;
            next.extend(info.references.iter().cloned());
            if options.include_outputs && path.is_derivation() {
                for output in store.query_derivation_outputs(&path)?.into_values() {
                    if store.is_valid_path(&output)? {
                        next.insert(output);
                    }
                }
            }
            if options.include_derivers
                && let Some(deriver) = &info.deriver
                    && store.is_valid_path(deriver)? {
                        next.insert(deriver.clone());
                    }
        }
        closure.insert(path);
        pending.extend(next.into_iter().filter(|p| !closure.contains(p)));
    }
    Ok(closure)
}

/// Orders `paths` so that a path comes before every path it references
/// (referrers first). Unrelated paths keep a deterministic order: a depth-first
/// post-order over the set in store path order, reversed, which is the order
/// CppNix's `topoSortPaths` gives.
pub fn topo_sort_paths(store: &dyn Store, paths: &StorePathSet) -> Result<Vec<StorePath>, StoreError> {
    topo_sort_with(
        paths.clone(),
        |path| {
            Ok(store
                .query_path_info(path)?
                .map(|info| info.references)
                .unwrap_or_default())
        },
        store.store_dir(),
    )
}

/// [`topo_sort_paths`] with the references supplied by `references_of`.
pub fn topo_sort_with(
    paths: StorePathSet,
    mut references_of: impl FnMut(&StorePath) -> Result<StorePathSet, StoreError>,
    store_dir: &StoreDir,
) -> Result<Vec<StorePath>, StoreError> {
    let mut post_order = Vec::with_capacity(paths.len());
    let mut visited = BTreeSet::new();
    let mut on_stack = BTreeSet::new();
    // Explicit stack of (path, its remaining children), so deep graphs cannot
    // overflow the native stack.
    for root in &paths {
        if visited.contains(root) {
            continue;
        }
        let mut stack: Vec<(StorePath, Vec<StorePath>)> = Vec::new();
        visited.insert(root.clone());
        on_stack.insert(root.clone());
        let children = children_in_set(&paths, root, &mut references_of)?;
        stack.push((root.clone(), children));
        while let Some((node, children)) = stack.last_mut() {
            if let Some(child) = children.pop() {
                if on_stack.contains(&child) {
                    return Err(StoreError::Cycle {
                        path: store_dir.print_path(&child),
                        parent: store_dir.print_path(node),
                    });
                }
                if visited.insert(child.clone()) {
                    on_stack.insert(child.clone());
                    let grandchildren = children_in_set(&paths, &child, &mut references_of)?;
                    stack.push((child, grandchildren));
                }
            } else {
                let (node, _) = stack.pop().expect("non-empty");
                on_stack.remove(&node);
                post_order.push(node);
            }
        }
    }
    post_order.reverse();
    Ok(post_order)
}

/// References of `path` inside `paths`, excluding itself, reversed so that
/// popping visits them in ascending order.
fn children_in_set(
    paths: &StorePathSet,
    path: &StorePath,
    references_of: &mut impl FnMut(&StorePath) -> Result<StorePathSet, StoreError>,
) -> Result<Vec<StorePath>, StoreError> {
    let mut children: Vec<StorePath> = references_of(path)?
        .into_iter()
        .filter(|r| r != path && paths.contains(r))
        .collect();
    children.reverse();
    Ok(children)
}
