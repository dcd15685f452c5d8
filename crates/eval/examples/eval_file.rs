//! Evaluates a Nix file strictly and prints the value as
//! `nix-instantiate --eval --strict` would, with the file-system `FsIO` (no
//! store). For benchmarks against CppNix:
//! `cargo run --release -p nivis-eval --example eval_file -- FILE`.

use std::path::PathBuf;
use std::rc::Rc;

use nivis_eval::{Eval, FsIO, Pos, Settings};

fn main() {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: eval_file FILE");
        std::process::exit(2);
    };
    let code = nivis_eval::run_with_big_stack(1 << 30, move || {
        let mut ev = Eval::new(Rc::new(FsIO), Settings::default());
        let path = std::fs::canonicalize(PathBuf::from(&file)).unwrap_or_else(|_| PathBuf::from(&file));
        let result = ev
            .parse_file(&path)
            .and_then(|e| ev.eval_expr(e))
            .and_then(|v| ev.force_deep(&v, Pos::NONE));
        match result {
            Ok(v) => {
                let mut out = nivis_eval::print::print_value_bytes(&mut ev, &v);
                out.push(b'\n');
                use std::io::Write;
                let _ = std::io::stdout().write_all(&out);
                0
            }
            Err(e) => {
                eprintln!("{}", e.render(false));
                1
            }
        }
    });
    std::process::exit(code);
}
