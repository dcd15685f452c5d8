//! `UserPool`: CppNix's errors for unusable `build-users-group` values, and
//! the per-uid locks that keep two builds off one build user. Uses the real
//! group database; the member part needs the test users that
//! `crates/cli/tests/build_users.rs` creates (as root), else it is SKIPPED.

use nivis_build::UserPool;

#[test]
fn unknown_group_is_cppnix_error() {
    let state = tempfile::tempdir().expect("temp dir");
    let error = UserPool::open("nivis-no-such-group", state.path()).expect_err("no such group");
    assert_eq!(error.to_string(), "the group 'nivis-no-such-group' specified in 'build-users-group' does not exist");
}

#[test]
fn members_are_taken_once_until_released() {
    let state = tempfile::tempdir().expect("temp dir");
    let pool = match UserPool::open("nivisbld-test", state.path()) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("SKIPPED members_are_taken_once_until_released: group nivisbld-test unusable ({e})");
            return;
        }
    };
    let mut taken = Vec::new();
    while let Some(lock) = pool.try_acquire().expect("acquire") {
        assert!(!taken.iter().any(|t: &nivis_build::UserLock| t.user == lock.user), "{:?} taken twice", lock.user);
        assert!(state.path().join("userpool").join(lock.user.uid.to_string()).exists());
        taken.push(lock);
    }
    assert!(!taken.is_empty());
    let freed = taken.pop().expect("one").user;
    assert_eq!(pool.try_acquire().expect("acquire").map(|l| l.user), Some(freed));
}
