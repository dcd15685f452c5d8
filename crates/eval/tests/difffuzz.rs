//! Differential fuzzing of the evaluator against CppNix 2.8.
//!
//! Random, mostly well-typed expressions (arithmetic with int/float mixing,
//! strings and interpolation, lists, attribute sets, let/rec/with, lambdas
//! with patterns, and many builtins) are generated from a seed, evaluated
//! strictly by nivis and by `/usr/bin/nix-instantiate --eval --strict`, and
//! the printed results compared. Both failing counts as agreement (error
//! messages are not compared); so does nivis reporting an integer overflow
//! where 2.8 wrapped around, or a float out of the integer range in
//! floor/ceil (deliberate post-2.8 changes). Floats are kept
//! out of toJSON for the same reason.
//!
//! Expressions are checked as one list; when the two sides disagree, or both
//! fail, the list is halved until single expressions are left, so one CppNix
//! run covers hundreds of expressions.
//!
//! Each `cargo test` run checks a fixed seed and a time-based one (printed, so
//! a failure can be replayed with `NIVIS_FUZZ_SEED=<seed>`). `NIVIS_FUZZ_COUNT`
//! sets the number of expressions per seed (default 200). Without CppNix the
//! test is skipped. Every disagreement fails the run, except the deliberate
//! post-2.8 changes the comparison names (integer overflow and out-of-range
//! floor/ceil are errors now). `NIVIS_FUZZ_LENIENT=1` tolerates up to
//! MAX_DISAGREEMENT_PERCENT, for exploring with large counts.

use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

const NIX_INSTANTIATE: &str = "/usr/bin/nix-instantiate";
const TIMEOUT: Duration = Duration::from_secs(30);

/// With NIVIS_FUZZ_LENIENT=1, up to this share of expressions may disagree.
const MAX_DISAGREEMENT_PERCENT: usize = 5;

/// A small deterministic random generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int,
    Float,
    Bool,
    Str,
    IntList,
    StrList,
    Attrs,
}

const ALL_TYPES: [Ty; 7] = [Ty::Int, Ty::Float, Ty::Bool, Ty::Str, Ty::IntList, Ty::StrList, Ty::Attrs];

struct Generator {
    rng: Rng,
    /// Variables in scope with their types.
    scope: Vec<(String, Ty)>,
    counter: usize,
}

impl Generator {
    fn fresh(&mut self) -> String {
        self.counter += 1;
        format!("v{}", self.counter)
    }

    fn variable(&mut self, ty: Ty) -> Option<String> {
        let candidates: Vec<&String> = self.scope.iter().filter(|(_, t)| *t == ty).map(|(n, _)| n).collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.below(candidates.len())].clone())
    }

    fn expr(&mut self, ty: Ty, depth: u32) -> String {
        if depth == 0 || self.rng.below(5) == 0 {
            if self.rng.below(3) == 0
                && let Some(name) = self.variable(ty)
            {
                return name;
            }
            return self.leaf(ty);
        }
        // Binding forms work for every type.
        match self.rng.below(12) {
            0 => return self.let_in(ty, depth),
            1 => return self.with_in(ty, depth),
            2 => return self.lambda_call(ty, depth),
            3 => {
                let c = self.expr(Ty::Bool, depth - 1);
                let a = self.expr(ty, depth - 1);
                let b = self.expr(ty, depth - 1);
                return format!("(if {c} then {a} else {b})");
            }
            _ => {}
        }
        let d = depth - 1;
        match ty {
            Ty::Int => match self.rng.below(23) {
                0 => format!("({} + {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                1 => format!("({} - {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                2 => format!("({} * {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                3 => format!("({} / {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                4 => format!("(builtins.length {})", self.expr(Ty::IntList, d)),
                5 => format!("(builtins.stringLength {})", self.expr(Ty::Str, d)),
                6 => format!("(builtins.foldl' (a: b: a + b) 0 {})", self.expr(Ty::IntList, d)),
                7 => format!("(builtins.bitXor {} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                8 => format!("(builtins.elemAt {} {})", self.expr(Ty::IntList, d), self.rng.below(3)),
                9 => format!("({}.a or {})", self.expr(Ty::Attrs, d), self.expr(Ty::Int, d)),
                10 => format!("(builtins.compareVersions {} {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                11 => format!("(builtins.floor {})", self.expr(Ty::Float, d)),
                12 => format!("(builtins.head {})", self.expr(Ty::IntList, d)),
                13 => format!("(-{})", self.expr(Ty::Int, d)),
                14 => format!("(builtins.length (builtins.attrNames {}))", self.expr(Ty::Attrs, d)),
                15 => format!("(let a = {}; in with {{ a = {}; }}; a)", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                16 => format!("(builtins.seq {} {})", self.expr(Ty::IntList, d), self.expr(Ty::Int, d)),
                17 => format!("(assert {}; {})", self.expr(Ty::Bool, d), self.expr(Ty::Int, d)),
                18 => format!("({}.a.b or {})", self.expr(Ty::Attrs, d), self.expr(Ty::Int, d)),
                19 => format!("(builtins.length (builtins.catAttrs \"a\" [ {} {} ]))", self.expr(Ty::Attrs, d), self.expr(Ty::Attrs, d)),
                20 => format!("(let f = x: y: x - y; in f {} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                21 => format!("(builtins.add {} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
                _ => format!("(builtins.bitAnd {} {})", self.expr(Ty::Int, d), self.expr(Ty::Int, d)),
            },
            Ty::Float => match self.rng.below(6) {
                0 => format!("({} + {})", self.expr(Ty::Float, d), self.expr(Ty::Int, d)),
                1 => format!("({} * {})", self.expr(Ty::Int, d), self.expr(Ty::Float, d)),
                2 => format!("({} / {})", self.expr(Ty::Float, d), self.expr(Ty::Float, d)),
                3 => format!("({} - {})", self.expr(Ty::Float, d), self.expr(Ty::Float, d)),
                4 => format!("(builtins.div {} {})", self.expr(Ty::Float, d), self.expr(Ty::Int, d)),
                _ => format!("(0.5 + builtins.ceil {})", self.expr(Ty::Float, d)),
            },
            Ty::Bool => match self.rng.below(19) {
                0 => format!("({} < {})", self.expr(Ty::Int, d), self.expr(Ty::Float, d)),
                1 => format!("({} == {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                2 => format!("({} == {})", self.expr(Ty::IntList, d), self.expr(Ty::IntList, d)),
                3 => format!("({} && {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                4 => format!("({} || {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                5 => format!("(!{})", self.expr(Ty::Bool, d)),
                6 => format!("({} -> {})", self.expr(Ty::Bool, d), self.expr(Ty::Bool, d)),
                7 => format!("(builtins.elem {} {})", self.expr(Ty::Int, d), self.expr(Ty::IntList, d)),
                8 => format!("({} ? {})", self.expr(Ty::Attrs, d), self.rng.pick(&["a", "b", "c", "\"a\""])),
                9 => format!("({} < {})", self.expr(Ty::StrList, d), self.expr(Ty::StrList, d)),
                10 => format!("({} == {})", self.expr(Ty::Attrs, d), self.expr(Ty::Attrs, d)),
                11 => format!("(builtins.all (x: x > 1) {})", self.expr(Ty::IntList, d)),
                12 => format!("({} >= {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                13 => {
                    let ty = ALL_TYPES[self.rng.below(ALL_TYPES.len())];
                    format!("(builtins.tryEval (if {} then throw \"t\" else {})).success", self.expr(Ty::Bool, d), self.expr(ty, d))
                }
                14 => format!("({} < {})", self.expr(Ty::Float, d), self.expr(Ty::Float, d)),
                15 => format!("({} ? a.b)", self.expr(Ty::Attrs, d)),
                16 => format!("(builtins.any (x: x == {}) {})", self.expr(Ty::Int, d), self.expr(Ty::IntList, d)),
                17 => format!("(builtins.deepSeq {} {})", self.expr(Ty::Attrs, d), self.expr(Ty::Bool, d)),
                _ => format!("(builtins.isString {})", self.expr(Ty::Str, d)),
            },
            Ty::Str => match self.rng.below(22) {
                0 => format!("({} + {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d)),
                1 => format!("\"<${{{}}}>\"", self.expr(Ty::Str, d)),
                2 => format!("(toString {})", self.expr(Ty::Int, d)),
                3 => format!("(toString {})", self.expr(Ty::Float, d)),
                4 => format!("(builtins.substring {} {} {})", self.rng.below(4), self.rng.below(5), self.expr(Ty::Str, d)),
                5 => format!("(builtins.concatStringsSep \"{}\" {})", self.rng.pick(&[",", "", "-", "\\n"]), self.expr(Ty::StrList, d)),
                6 => format!(
                    "(builtins.replaceStrings [ {} ] [ {} ] {})",
                    self.rng.pick(&["\"a\"", "\"\"", "\"ab\"", "\"-\""]),
                    self.rng.pick(&["\"x\"", "\"\"", "\"AB\""]),
                    self.expr(Ty::Str, d)
                ),
                7 => {
                    // Not floats: toJSON prints them differently after 2.8.
                    let ty = [Ty::Int, Ty::Bool, Ty::Str, Ty::IntList, Ty::StrList, Ty::Attrs][self.rng.below(6)];
                    format!("(builtins.toJSON {})", self.expr(ty, d))
                }
                8 => {
                    let ty = ALL_TYPES[self.rng.below(ALL_TYPES.len())];
                    format!("(builtins.typeOf {})", self.expr(ty, d))
                }
                9 => format!("(builtins.hashString \"{}\" {})", self.rng.pick(&["md5", "sha1", "sha256"]), self.expr(Ty::Str, d)),
                10 => format!("(baseNameOf {})", self.expr(Ty::Str, d)),
                11 => format!("(toString {})", self.expr(Ty::IntList, d)),
                12 => format!("({}.name or \"none\")", self.expr(Ty::Attrs, d)),
                13 => format!("(builtins.unsafeDiscardStringContext {})", self.expr(Ty::Str, d)),
                14 => format!("(dirOf {})", self.expr(Ty::Str, d)),
                15 => format!("''\n  ind ${{{}}}\n    more\n''", self.expr(Ty::Str, d)),
                16 => format!("(builtins.toXML {})", self.expr(Ty::Attrs, d)),
                17 => format!("\"${{toString {}}}/${{{}}}\"", self.expr(Ty::Int, d), self.expr(Ty::Str, d)),
                18 => format!("(builtins.toJSON (builtins.fromJSON (builtins.toJSON {})))", self.expr(Ty::StrList, d)),
                19 => format!("(toString {})", self.expr(Ty::StrList, d)),
                20 => format!("(builtins.hashString \"sha512\" {})", self.expr(Ty::Str, d)),
                _ => format!("(toString {})", self.expr(Ty::Bool, d)),
            },
            Ty::IntList => match self.rng.below(11) {
                0 => format!("({} ++ {})", self.expr(Ty::IntList, d), self.expr(Ty::IntList, d)),
                1 => format!("(map (x: x * {}) {})", self.expr(Ty::Int, d), self.expr(Ty::IntList, d)),
                2 => format!("(builtins.filter (x: x > {}) {})", self.expr(Ty::Int, d), self.expr(Ty::IntList, d)),
                3 => format!("(builtins.sort builtins.lessThan {})", self.expr(Ty::IntList, d)),
                4 => format!("(builtins.genList (i: i * {}) {})", self.expr(Ty::Int, d), self.rng.below(6)),
                5 => format!("(builtins.tail {})", self.expr(Ty::IntList, d)),
                6 => format!("(builtins.concatLists [ {} {} ])", self.expr(Ty::IntList, d), self.expr(Ty::IntList, d)),
                7 => format!("(builtins.attrValues (builtins.mapAttrs (n: v: {}) {}))", self.expr(Ty::Int, d), self.expr(Ty::Attrs, d)),
                8 => format!("(builtins.sort (a: b: a > b) {})", self.expr(Ty::IntList, d)),
                9 => format!("(builtins.concatMap (x: [ x x ]) {})", self.expr(Ty::IntList, d)),
                _ => {
                    let items: Vec<String> = (0..self.rng.below(4)).map(|_| self.expr(Ty::Int, d)).collect();
                    format!("[ {} ]", items.join(" "))
                }
            },
            Ty::StrList => match self.rng.below(8) {
                0 => format!("(builtins.attrNames {})", self.expr(Ty::Attrs, d)),
                1 => format!("(builtins.splitVersion {})", self.expr(Ty::Str, d)),
                2 => format!("(builtins.filter builtins.isString (builtins.split \"{}\" {}))", self.rng.pick(&["a", ",", "[ab]+", "(a)|b", "x*", ""]), self.expr(Ty::Str, d)),
                3 => format!("(map toString {})", self.expr(Ty::IntList, d)),
                4 => format!("(builtins.sort (a: b: a < b) {})", self.expr(Ty::StrList, d)),
                5 => format!("(({}) ++ {})", self.expr(Ty::StrList, d), self.expr(Ty::StrList, d)),
                6 => format!("(let m = builtins.match \"{}\" {}; in if m == null then [ ] else builtins.filter builtins.isString m)", self.rng.pick(&["(a*)(b?)", "([^-]*)-(.*)", ".*", "(x)|(y)"]), self.expr(Ty::Str, d)),
                _ => {
                    let items: Vec<String> = (0..self.rng.below(4)).map(|_| self.expr(Ty::Str, d)).collect();
                    format!("[ {} ]", items.join(" "))
                }
            },
            Ty::Attrs => match self.rng.below(14) {
                0 => format!("({} // {})", self.expr(Ty::Attrs, d), self.expr(Ty::Attrs, d)),
                1 => format!("(rec {{ a = {}; b = a + 1; }})", self.expr(Ty::Int, d)),
                2 => format!("(builtins.mapAttrs (name: value: name) {})", self.expr(Ty::Attrs, d)),
                3 => format!("(builtins.removeAttrs {} [ \"a\" ])", self.expr(Ty::Attrs, d)),
                4 => format!("(builtins.intersectAttrs {} {})", self.expr(Ty::Attrs, d), self.expr(Ty::Attrs, d)),
                5 => format!("(builtins.parseDrvName {})", self.expr(Ty::Str, d)),
                6 => format!("(builtins.listToAttrs (map (n: {{ name = n; value = n; }}) {}))", self.expr(Ty::StrList, d)),
                7 => format!("(builtins.groupBy (s: builtins.substring 0 1 s) {})", self.expr(Ty::StrList, d)),
                8 => format!("(builtins.fromJSON (builtins.toJSON {}))", self.expr(Ty::Attrs, d)),
                9 => format!("(builtins.zipAttrsWith (n: vs: builtins.length vs) [ {} {} ])", self.expr(Ty::Attrs, d), self.expr(Ty::Attrs, d)),
                10 => format!("(builtins.partition (x: x > {}) {})", self.expr(Ty::Int, d), self.expr(Ty::IntList, d)),
                11 => format!("(let s = {}; in {{ inherit (s) a; b = s.b or 0; }})", self.expr(Ty::Attrs, d)),
                12 => format!("(rec {{ x = {}; y = [ x x ]; }})", self.expr(Ty::Str, d)),
                _ => {
                    let mut fields = String::new();
                    for key in ["a", "b", "name", "\"c d\""] {
                        if self.rng.below(2) == 0 {
                            let ty = [Ty::Int, Ty::Str, Ty::IntList, Ty::Bool][self.rng.below(4)];
                            let ty = if key == "a" { Ty::Int } else if key == "name" { Ty::Str } else { ty };
                            fields.push_str(&format!("{key} = {}; ", self.expr(ty, d)));
                        }
                    }
                    format!("{{ {fields}}}")
                }
            },
        }
    }

    fn leaf(&mut self, ty: Ty) -> String {
        match ty {
            Ty::Int => self.rng.pick(&["0", "1", "2", "3", "7", "10", "(-4)", "100", "9223372036854775807"]).into(),
            Ty::Float => self.rng.pick(&["0.5", "1.0", "2.5", "(-1.25)", "0.1", "1.0e10", "3.0e-5", "123456.789"]).into(),
            Ty::Bool => self.rng.pick(&["true", "false"]).into(),
            Ty::Str => self
                .rng
                .pick(&["\"\"", "\"a\"", "\"abc\"", "\"a-1.2\"", "\"x\\ny\"", "\"q\\\"t\"", "\"\\${x}\"", "\"é\"", "\"1.0pre2\"", "\"a,b,,c\"", "''ind''", "\"/a/b\""])
                .into(),
            Ty::IntList => self.rng.pick(&["[ ]", "[ 1 ]", "[ 3 1 2 ]", "[ 1 1 ]"]).into(),
            Ty::StrList => self.rng.pick(&["[ ]", "[ \"a\" ]", "[ \"b\" \"a\" \"ab\" ]"]).into(),
            Ty::Attrs => self.rng.pick(&["{ }", "{ a = 1; }", "{ a = 2; b = \"x\"; }", "{ name = \"n\"; \"c d\" = [ ]; }"]).into(),
        }
    }

    fn let_in(&mut self, ty: Ty, depth: u32) -> String {
        let name = self.fresh();
        let bound_ty = ALL_TYPES[self.rng.below(ALL_TYPES.len())];
        let bound = self.expr(bound_ty, depth - 1);
        self.scope.push((name.clone(), bound_ty));
        let body = self.expr(ty, depth - 1);
        self.scope.pop();
        format!("(let {name} = {bound}; in {body})")
    }

    fn with_in(&mut self, ty: Ty, depth: u32) -> String {
        // `with { a = INT; }` makes `a` an int unless a let shadows it.
        let value = self.expr(Ty::Int, depth - 1);
        self.scope.push(("a".into(), Ty::Int));
        let body = self.expr(ty, depth - 1);
        self.scope.pop();
        format!("(with {{ a = {value}; }}; {body})")
    }

    fn lambda_call(&mut self, ty: Ty, depth: u32) -> String {
        let name = self.fresh();
        let arg_ty = ALL_TYPES[self.rng.below(ALL_TYPES.len())];
        let arg = self.expr(arg_ty, depth - 1);
        self.scope.push((name.clone(), arg_ty));
        let body = self.expr(ty, depth - 1);
        self.scope.pop();
        match self.rng.below(3) {
            0 => format!("(({name}: {body}) {arg})"),
            1 => format!("(({{ {name}, extra ? 1, ... }}: {body}) {{ {name} = {arg}; other = 2; }})"),
            _ => format!("((args@{{ {name} ? {arg} }}: {body}) {{ }})"),
        }
    }
}

/// Evaluates `source` strictly with nivis and prints it; `Err` on any error,
/// panic or timeout (with a description).
fn nivis_eval(source: String) -> Result<String, String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            let result = std::panic::catch_unwind(move || {
                use nivis_eval::{Eval, FsIO, Pos, Settings};
                let mut eval = Eval::new(Rc::new(FsIO), Settings::default());
                let expr = eval.parse_string(&source, Path::new("/")).map_err(|e| e.render(false))?;
                let value = eval
                    .eval_expr(expr)
                    .and_then(|value| eval.force_deep(&value, Pos::NONE))
                    .map_err(|e| e.render(false))?;
                Ok(String::from_utf8_lossy(&nivis_eval::print::print_value_bytes(&mut eval, &value)).into_owned())
            });
            let _ = sender.send(result.unwrap_or_else(|_| Err("PANIC".to_string())));
        })
        .expect("spawning evaluator thread");
    receiver.recv_timeout(TIMEOUT).unwrap_or_else(|_| Err("TIMEOUT".to_string()))
}

fn cppnix_eval(source: &str) -> Result<String, String> {
    let output = std::process::Command::new(NIX_INSTANTIATE)
        .args(["--readonly-mode", "--eval", "--strict", "-E", source])
        .current_dir("/")
        .env_remove("NIX_PATH")
        .output()
        .map_err(|e| format!("running nix-instantiate: {e}"))?;
    if output.status.success() {
        Ok(current_dollar_escapes(String::from_utf8_lossy(&output.stdout).trim_end_matches('\n')))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// CppNix 2.8 prints every `$` in a string as `\$`; current CppNix escapes
/// only a `$` before `{` (a deliberate post-2.8 difference, tests/lang/POST-2.8.md),
/// so 2.8's output is rewritten to current CppNix's before comparing.
fn current_dollar_escapes(printed: &str) -> String {
    let mut out = String::with_capacity(printed.len());
    let mut chars = printed.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('$') if chars.peek() != Some(&'{') => out.push('$'),
            Some(escaped) => {
                out.push('\\');
                out.push(escaped);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[test]
fn dollar_escapes_are_rewritten_as_current_cppnix_prints_them() {
    assert_eq!(current_dollar_escapes(r#"[ "\$" "\${x}" "\\\$" "a\$b" { "\$" = 1; } ]"#), r#"[ "$" "\${x}" "\\$" "a$b" { "$" = 1; } ]"#);
}

/// Checks `expressions` as one list, halving on disagreement or shared
/// failure; pushes every single-expression disagreement.
fn check(expressions: &[String], disagreements: &mut Vec<String>) {
    let source = if expressions.len() == 1 {
        expressions[0].clone()
    } else {
        format!("[\n{}\n]", expressions.iter().map(|e| format!("({e})")).collect::<Vec<_>>().join("\n"))
    };
    let ours = nivis_eval(source.clone());
    let theirs = cppnix_eval(&source);
    let agree = match (&ours, &theirs) {
        (Ok(a), Ok(b)) => a == b,
        // Integer overflow is an error since CppNix 2.24 (2.8 wrapped around),
        // and so is floor/ceil of a float outside the integer range (2.8
        // converted with undefined behaviour).
        (Err(error), Ok(_)) if expressions.len() == 1 && (error.contains("overflow") || error.contains("range")) => true,
        (Err(_), Err(_)) => expressions.len() == 1 && !ours.as_ref().is_err_and(|e| e == "PANIC" || e == "TIMEOUT"),
        _ => false,
    };
    if agree {
        return;
    }
    if expressions.len() == 1 {
        let show = |r: &Result<String, String>| match r {
            Ok(value) => value.clone(),
            Err(error) => format!("error: {}", error.lines().next().unwrap_or("")),
        };
        disagreements.push(format!("  {}\n    nivis:  {}\n    CppNix: {}", expressions[0], show(&ours), show(&theirs)));
        return;
    }
    let (left, right) = expressions.split_at(expressions.len() / 2);
    check(left, disagreements);
    check(right, disagreements);
}

fn run_seed(seed: u64, count: usize) -> Vec<String> {
    let mut generator = Generator { rng: Rng(seed), scope: Vec::new(), counter: 0 };
    let expressions: Vec<String> = (0..count)
        .map(|_| {
            let ty = ALL_TYPES[generator.rng.below(ALL_TYPES.len())];
            generator.expr(ty, 4)
        })
        .collect();
    let mut disagreements = Vec::new();
    for chunk in expressions.chunks(50) {
        check(chunk, &mut disagreements);
    }
    disagreements
}

#[test]
fn random_expressions_agree_with_cppnix() {
    if !Path::new(NIX_INSTANTIATE).exists() {
        eprintln!("skipped: {NIX_INSTANTIATE} not installed");
        return;
    }
    let count = std::env::var("NIVIS_FUZZ_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(200);
    let seeds: Vec<u64> = match std::env::var("NIVIS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let time_seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            vec![1, time_seed]
        }
    };
    let strict = !std::env::var("NIVIS_FUZZ_LENIENT").is_ok_and(|value| value == "1");
    let mut report = Vec::new();
    let mut total_disagreements = 0;
    let mut total = 0;
    for seed in seeds {
        println!("difffuzz: seed {seed}, {count} expressions");
        let disagreements = run_seed(seed, count);
        total += count;
        total_disagreements += disagreements.len();
        if !disagreements.is_empty() {
            report.push(format!(
                "seed {seed} (replay: NIVIS_FUZZ_SEED={seed}): {} disagreement(s)\n{}",
                disagreements.len(),
                disagreements.join("\n")
            ));
        }
    }
    println!("difffuzz: {total_disagreements} of {total} expressions disagree");
    for part in &report {
        println!("{part}");
    }
    let allowed = if strict { 0 } else { total * MAX_DISAGREEMENT_PERCENT / 100 };
    assert!(
        total_disagreements <= allowed,
        "nivis and CppNix 2.8 disagree on {total_disagreements} of {total} expressions (allowed {allowed}):\n{}",
        report.join("\n")
    );
}

/// The generator itself: CppNix must accept (parse) what it produces, and it
/// must be deterministic for a seed.
#[test]
fn generator_is_deterministic_and_parses() {
    let make = |seed| {
        let mut generator = Generator { rng: Rng(seed), scope: Vec::new(), counter: 0 };
        (0..20).map(|_| generator.expr(Ty::Attrs, 4)).collect::<Vec<_>>()
    };
    assert_eq!(make(7), make(7));
    if !Path::new(NIX_INSTANTIATE).exists() {
        return;
    }
    let source = format!("[ {} ]", make(7).iter().map(|e| format!("({e})")).collect::<Vec<_>>().join(" "));
    let output = std::process::Command::new(NIX_INSTANTIATE)
        .args(["--parse", "-E", &source])
        .output()
        .expect("running nix-instantiate");
    assert!(output.status.success(), "CppNix cannot parse generated code: {}", String::from_utf8_lossy(&output.stderr));
}

/// Random token soup (mostly invalid code): nivis's parser must accept and
/// reject exactly what CppNix 2.8's parser does (`--parse`, which also
/// rejects undefined variables), and both must agree on values where both
/// parse.
#[test]
fn random_token_soup_parses_like_cppnix() {
    if !Path::new(NIX_INSTANTIATE).exists() {
        eprintln!("skipped: {NIX_INSTANTIATE} not installed");
        return;
    }
    const TOKENS: &[&str] = &[
        "a", "b", "x", "1", "2.5", ".5", "0", "\"s\"", "\"${a}\"", "\"\\n\"", "''i''", "''\n  ${b}\n''", "./p", "./p/${a}",
        "/abs", "http://x.y/z", "<n>", "+", "-", "*", "/", "++", "//", "==", "!=", "<", "<=", ">", "&&", "||", "->", "!",
        "?", ".", "or", "let", "in", "rec", "with", "inherit", "if", "then", "else", "assert", "{", "}", "[", "]", "(",
        ")", ";", "=", ":", "@", ",", "...", "${", "#c\n", "/*c*/", "true", "null", "x.y", "a.${b}",
    ];
    let seed = std::env::var("NIVIS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(5u64);
    // One CppNix run per snippet, so fewer than the expression fuzzer.
    let count: usize = std::env::var("NIVIS_FUZZ_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(120);
    let mut rng = Rng(seed);
    let mut disagreements = Vec::new();
    let mut parsed_by_both = Vec::new();
    for _ in 0..count {
        let body: Vec<&str> = (0..1 + rng.below(7)).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        let source = format!("a: b: {}", body.join(" "));
        let theirs = std::process::Command::new(NIX_INSTANTIATE)
            .args(["--parse", "-E", &source])
            .current_dir("/")
            .output()
            .expect("running nix-instantiate")
            .status
            .success();
        let ours = nivis_parses(source.clone());
        match ours {
            Ok(ours) if ours == theirs => {
                if ours {
                    parsed_by_both.push(format!("({source}) 1 2"));
                }
            }
            _ => disagreements.push(format!("  {source:?}: nivis {ours:?}, CppNix parses: {theirs}")),
        }
    }
    // Where both parse, the values (or both failing) must agree too.
    let mut value_disagreements = Vec::new();
    for chunk in parsed_by_both.chunks(50) {
        check(chunk, &mut value_disagreements);
    }
    println!(
        "token soup (seed {seed}): {} of {count} parse decisions differ, {} of {} values differ",
        disagreements.len(),
        value_disagreements.len(),
        parsed_by_both.len()
    );
    for line in disagreements.iter().chain(&value_disagreements) {
        println!("{line}");
    }
    let strict = !std::env::var("NIVIS_FUZZ_LENIENT").is_ok_and(|value| value == "1");
    let allowed = if strict { 0 } else { count * MAX_DISAGREEMENT_PERCENT / 100 };
    assert!(
        disagreements.len() + value_disagreements.len() <= allowed,
        "parser disagreements with CppNix 2.8 (replay: NIVIS_FUZZ_SEED={seed}):\n{}\n{}",
        disagreements.join("\n"),
        value_disagreements.join("\n")
    );
}

/// Whether nivis parses `source` (`Err` on panic or timeout).
fn nivis_parses(source: String) -> Result<bool, String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let result = std::panic::catch_unwind(move || {
                let mut eval = nivis_eval::Eval::new(Rc::new(nivis_eval::FsIO), nivis_eval::Settings::default());
                eval.parse_string(&source, Path::new("/")).is_ok()
            });
            let _ = sender.send(result.map_err(|_| "PANIC".to_string()));
        })
        .expect("spawning parser thread");
    receiver.recv_timeout(TIMEOUT).unwrap_or_else(|_| Err("TIMEOUT".to_string()))
}

/// Random string literals, especially indented strings (indentation
/// stripping, escapes, interpolation at line starts, whitespace-only lines),
/// must evaluate to the same bytes in nivis and CppNix 2.8.
#[test]
fn random_string_literals_agree_with_cppnix() {
    if !Path::new(NIX_INSTANTIATE).exists() {
        eprintln!("skipped: {NIX_INSTANTIATE} not installed");
        return;
    }
    const INDENTS: &[&str] = &["", " ", "  ", "    ", "\t", " \t", "      "];
    const INDENTED_PIECES: &[&str] = &[
        "text", "$", "$$", "''$", "'''", "''\\n", "''\\t", "''\\\\", "''\\x", "${x}", "${\"s\"}", "$${x}", "'", "\\", "\"",
        "a b", " ", "\t", "''${x}", "\r", "é",
    ];
    const STRING_PIECES: &[&str] = &[
        "text", "\\n", "\\t", "\\r", "\\\\", "\\\"", "\\$", "\\${x}", "${x}", "$", "$$", "$${x}", "\\q", "'", "''", "\n", "\r\n",
        "\r", "é", "\\\n",
    ];
    let seed = std::env::var("NIVIS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(9u64);
    let count: usize = std::env::var("NIVIS_FUZZ_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(200);
    let mut rng = Rng(seed);
    let mut expressions = Vec::new();
    for _ in 0..count {
        let literal = if rng.below(3) == 0 {
            let pieces: String = (0..rng.below(6)).map(|_| STRING_PIECES[rng.below(STRING_PIECES.len())]).collect();
            format!("\"{pieces}\"")
        } else {
            let mut text = String::from("''");
            if rng.below(2) == 0 {
                text.push('\n');
            }
            for line in 0..1 + rng.below(5) {
                if line > 0 {
                    text.push('\n');
                }
                text.push_str(INDENTS[rng.below(INDENTS.len())]);
                for _ in 0..rng.below(4) {
                    text.push_str(INDENTED_PIECES[rng.below(INDENTED_PIECES.len())]);
                }
            }
            if rng.below(2) == 0 {
                text.push('\n');
                text.push_str(INDENTS[rng.below(INDENTS.len())]);
            }
            text.push_str("''");
            text
        };
        expressions.push(format!("let x = \"X\\nY\"; in {literal}"));
    }
    // Most literals must be valid, or the test would only compare errors.
    let valid = expressions.iter().filter(|e| cppnix_eval(&format!("builtins.seq ({e}) 0")).is_ok()).take(20).count();
    assert!(valid >= 20, "too few valid string literals generated");
    let mut disagreements = Vec::new();
    for chunk in expressions.chunks(50) {
        check(chunk, &mut disagreements);
    }
    println!("string literals (seed {seed}): {} of {count} differ", disagreements.len());
    for line in &disagreements {
        println!("{line}");
    }
    let strict = !std::env::var("NIVIS_FUZZ_LENIENT").is_ok_and(|value| value == "1");
    let allowed = if strict { 0 } else { count * MAX_DISAGREEMENT_PERCENT / 100 };
    assert!(
        disagreements.len() <= allowed,
        "string literal disagreements with CppNix 2.8 (replay: NIVIS_FUZZ_SEED={seed}):\n{}",
        disagreements.join("\n")
    );
}
