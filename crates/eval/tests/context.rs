//! String contexts as sets: a context is shared between strings and copied
//! only when one of them changes, so every operation is checked against the
//! plain set it stands for (a `BTreeSet` of the same elements), including
//! across the vector-to-B-tree switch and on contexts shared with another.

use std::collections::BTreeSet;

use nivis_eval::value::{Context, ContextElement};

fn element(text: &str) -> ContextElement {
    ContextElement::from(text.as_bytes())
}

fn elements(context: &Context) -> Vec<Vec<u8>> {
    context.iter().map(|e| e.to_vec()).collect()
}

fn expected(set: &BTreeSet<Vec<u8>>) -> Vec<Vec<u8>> {
    set.iter().cloned().collect()
}

/// Paths in a scrambled order, so insertions land at the front, middle and end.
fn path(i: usize) -> String {
    format!("!out!/nix/store/{:032}-p{}.drv", (i * 7919) % 1000, i)
}

#[test]
fn union_matches_set_union_for_every_size() {
    for (left, right, overlap) in [(0, 3, 0), (1, 1, 1), (3, 5, 2), (20, 20, 10), (31, 2, 0), (40, 40, 39), (5, 60, 5)] {
        let mut ours = Context::new();
        let mut theirs = Context::new();
        let mut want = BTreeSet::new();
        for i in 0..left {
            ours.insert(element(&path(i)));
            want.insert(path(i).into_bytes());
        }
        for i in left - overlap..left - overlap + right {
            theirs.insert(element(&path(i)));
            want.insert(path(i).into_bytes());
        }
        let theirs_before = elements(&theirs);
        ours.union_with(&theirs);
        assert_eq!(elements(&ours), expected(&want), "left {left} right {right} overlap {overlap}");
        assert_eq!(ours.len(), want.len());
        // The other side is never changed by the union.
        assert_eq!(elements(&theirs), theirs_before);
    }
}

#[test]
fn a_shared_context_is_copied_before_it_changes() {
    let mut first = Context::new();
    first.insert(element("/nix/store/aaaa-a"));
    first.insert(element("=/nix/store/bbbb-b.drv"));
    // Union into an empty context shares it.
    let mut second = Context::new();
    second.union_with(&first);
    assert_eq!(second, first);
    let mut third = first.clone();
    // Changing the copies leaves the original as it was.
    assert!(second.insert(element("/nix/store/cccc-c")));
    assert!(third.remove(b"/nix/store/aaaa-a"));
    assert_eq!(elements(&first), vec![b"/nix/store/aaaa-a".to_vec(), b"=/nix/store/bbbb-b.drv".to_vec()]);
    assert_eq!(second.len(), 3);
    assert_eq!(elements(&third), vec![b"=/nix/store/bbbb-b.drv".to_vec()]);
    // A union with a subset of its own elements changes nothing.
    let before = elements(&second);
    second.union_with(&first);
    assert_eq!(elements(&second), before);
    // Owning iteration of a shared context leaves the other holder whole.
    let taken: Vec<ContextElement> = third.clone().into_iter().collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(third.len(), 1);
}

#[test]
fn empty_contexts_are_equal_however_they_were_made() {
    let mut emptied = Context::new();
    emptied.insert(element("/nix/store/aaaa-a"));
    assert!(emptied.remove(b"/nix/store/aaaa-a"));
    assert!(!emptied.remove(b"/nix/store/aaaa-a"));
    assert!(emptied.is_empty());
    assert_eq!(emptied, Context::new());
    let collected: Context = Vec::<ContextElement>::new().into_iter().collect();
    assert!(collected.is_empty());
    assert_eq!(collected.iter().count(), 0);
}
