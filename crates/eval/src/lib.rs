//! The Nix language: parse, lower to a resolved IR, evaluate lazily, builtins.
//!
//! This crate knows nothing of the store: every file-system and store operation
//! goes through [`EvalIO`], which the embedding program implements.
//!
//! Pipeline: [`lexer`] → [`parser`] (CppNix's grammar, straight to [`ast::Expr`])
//! → [`resolve`] (variables to `(depth, slot)` or run-time `with` lookup) →
//! [`Eval`] (lazy, thunks updated in place, black holes for infinite recursion).
//!
//! Typical use:
//! ```no_run
//! use std::rc::Rc;
//! use nivis_eval::{Eval, FsIO, Settings};
//! let mut ev = Eval::new(Rc::new(FsIO), Settings::default());
//! let expr = ev.parse_string("1 + 2", std::path::Path::new("/")).unwrap();
//! let v = ev.eval_expr(expr).unwrap();
//! let v = ev.force_deep(&v, nivis_eval::Pos::NONE).unwrap();
//! println!("{}", nivis_eval::print::print_value(&mut ev, &v, true).unwrap());
//! ```
//! Values are `Rc`-based: create and use an [`Eval`] on one thread, ideally one
//! with a large stack ([`run_with_big_stack`]).

pub mod ast;
pub mod builtins;
mod assert_eq;
mod derivation;
pub mod error;
pub mod eval;
mod hash;
pub mod io;
mod json;
pub mod lexer;
pub mod nix_string;
pub mod parser;
pub mod pos;
pub mod print;
pub mod rc;
pub mod resolve;
mod show_value;
mod strings;
pub mod support;
pub mod symbol;
pub mod value;

pub use error::{ErrorKind, EvalError, ParseError};
pub use eval::{Eval, Settings};
pub use io::{DerivationRequest, DerivationResult, EvalIO, FetchValue, FileType, FsIO, IoError};
pub use pos::Pos;
pub use symbol::Sym;
pub use value::Value;

/// Runs `f` on a new thread with a stack of `stack_bytes` (the evaluator recurses
/// deeply on deep data; 1 GiB of address space costs nothing until touched).
pub fn run_with_big_stack<T: Send + 'static>(stack_bytes: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name("nix-eval".into())
        .stack_size(stack_bytes)
        .spawn(f)
        .expect("spawning the evaluator thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
