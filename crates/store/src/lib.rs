//! The Nix store: a `Store` trait and the local store backend, which keeps
//! CppNix's SQLite schema and locking protocol so that CppNix and nivis can share
//! one store.
