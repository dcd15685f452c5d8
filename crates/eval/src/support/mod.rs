//! Pure helper modules for the evaluator: no evaluator types, no I/O.
//!
//! Each module reproduces one corner of CppNix's observable behaviour exactly
//! (regular expressions, version strings, float printing, TOML, JSON string
//! escaping, `builtins.sort`'s comparison order) and is unit-tested against outputs of CppNix 2.8 or, for later
//! changes, against CppNix's documentation.
pub mod posix_regex;
pub mod versions;
pub mod float_format;
pub mod json_string;
pub mod json_error;
pub mod toml;
pub mod flakeref;
pub mod sort;
