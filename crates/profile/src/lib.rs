//! Profiles: a profile is a symlink (`.../profiles/per-user/alice/profile`) to a
//! generation link beside it (`profile-7-link`), which points into the store.
//! This crate finds, creates, switches and deletes generations exactly as
//! CppNix's `profiles.cc` does, so either tool reads the other's profiles.
//!
//! Assumptions: a profile's generation links live in the profile's own
//! directory; every change to a profile happens under its lock
//! (`<profile>.lock`, CppNix's `PathLocks`); a symlink is only ever replaced by
//! `rename(2)` of a fully written temporary link, so a crash leaves the old or
//! the new link, never none. What the links point to must be valid in the store
//! (and registered as a root) *before* the link moves; callers build first.

mod closure_diff;
mod error;
mod generations;
mod manifest_json;

pub use closure_diff::{ClosureChange, diff_closures, format_closure_diff};
pub use error::ProfileError;
pub use generations::{
    DeleteSpec, Generation, ProfileLock, create_generation, default_profile, delete_generations,
    delete_generations_greater_than, delete_generations_older_than, delete_old_generations, find_generations,
    generation_link, lock_profile, parse_older_than, profiles_dir, replace_symlink, rollback, switch_generation,
    switch_link,
};
pub use manifest_json::{
    ManifestError, ProfileElement, ProfileElementSource, ProfileManifest, parse_drv_name, show_versions,
};
