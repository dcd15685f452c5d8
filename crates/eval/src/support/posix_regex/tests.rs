//! Expected values come from CppNix 2.8 (`nix-instantiate --eval --strict`),
//! either recorded below or, when `/usr/bin/nix-instantiate` exists, by
//! running it on randomly generated patterns.

use super::*;

fn render_groups(input: &[u8], groups: &Groups) -> String {
    let mut out = String::from("[ ");
    for group in groups {
        match group {
            None => out.push_str("null "),
            Some(range) => {
                out.push('"');
                out.push_str(&String::from_utf8_lossy(&input[range.clone()]));
                out.push_str("\" ");
            }
        }
    }
    out.push(']');
    out
}

/// The value `builtins.match pattern input` prints as, or the error.
fn nix_match(pattern: &str, input: &str) -> String {
    match compile(pattern.as_bytes()) {
        Err(_) => "error".to_string(),
        Ok(regex) => match regex.full_match(input.as_bytes()).expect("matching") {
            None => "null".to_string(),
            Some(groups) => render_groups(input.as_bytes(), &groups),
        },
    }
}

/// The value `builtins.split pattern input` prints as.
fn nix_split(pattern: &str, input: &str) -> String {
    let regex = match compile(pattern.as_bytes()) {
        Err(_) => return "error".to_string(),
        Ok(regex) => regex,
    };
    let bytes = input.as_bytes();
    let mut out = String::from("[ ");
    let mut previous_end = 0;
    for found in regex.split_matches(bytes) {
        let found = found.expect("matching");
        out.push('"');
        out.push_str(&String::from_utf8_lossy(&bytes[previous_end..found.range.start]));
        out.push_str("\" ");
        out.push_str(&render_groups(bytes, &found.groups));
        out.push(' ');
        previous_end = found.range.end;
    }
    out.push('"');
    out.push_str(&String::from_utf8_lossy(&bytes[previous_end..]));
    out.push_str("\" ]");
    out
}

#[test]
fn match_cases_recorded_from_cppnix() {
    let cases: &[(&str, &str, &str)] = &[
        ("a", "a", "[ ]"),
        ("a", "ab", "null"),
        ("(a)(b)", "ab", r#"[ "a" "b" ]"#),
        ("a(x)?b", "ab", "[ null ]"),
        ("(.*)\\.nix", "foo.nix", r#"[ "foo" ]"#),
        (".*", "", "[ ]"),
        ("(a|b)*", "abab", r#"[ "b" ]"#),
        ("[[:alpha:]]+", "abcXYZ", "[ ]"),
        ("[]a]+", "]a]", "[ ]"),
        ("[^]a]+", "bcd", "[ ]"),
        ("[a\\]+", "a\\", "[ ]"),
        ("[-a]+", "-a-", "[ ]"),
        ("[a-]+", "a--", "[ ]"),
        ("[.]", "x", "null"),
        ("a.b", "a\nb", "[ ]"),
        ("((a)(b)?)+", "aab", r#"[ "ab" "a" "b" ]"#),
        ("(a(b(c)))", "abc", r#"[ "abc" "bc" "c" ]"#),
        ("(a*)(a*)", "aaa", r#"[ "aaa" "" ]"#),
        ("(a|ab)(bc|c)", "abc", r#"[ "a" "bc" ]"#),
        ("a{1,2}", "aaa", "null"),
        ("(ab){2}", "abab", r#"[ "ab" ]"#),
        ("a|^b", "b", "[ ]"),
        ("x^", "x", "null"),
        ("a|", "a", "[ ]"),
        ("()", "", r#"[ "" ]"#),
        ("(|a)", "a", r#"[ "a" ]"#),
        ("a**", "aa", "[ ]"),
        ("[\\d]", "d", "[ ]"),
        ("((a)|b)*", "ab", r#"[ "b" "a" ]"#),
        ("(a*)*", "b", "null"),
        ("(a|ab)(c|bcd)(d*)", "abcd", r#"[ "a" "bcd" "" ]"#),
        ("a{1}{2}", "aa", "[ ]"),
        ("]", "]", "[ ]"),
        ("}", "}", "[ ]"),
        ("\\)", ")", "[ ]"),
        ("[[:w:]]", "a", "[ ]"),
        ("a+?", "a", "[ ]"),
        ("a??", "", "[ ]"),
        ("x{2}{3}", "xxxxxx", "[ ]"),
        ("$a", "a", "null"),
        ("(^a)", "a", r#"[ "a" ]"#),
        ("x|", "", "[ ]"),
        ("\\|", "|", "[ ]"),
        ("[[:ALPHA:]]", "a", "[ ]"),
        ("|a", "a", "[ ]"),
        ("[--/]", ".", "[ ]"),
        ("[[=a=]b]", "b", "[ ]"),
        ("[a[]", "[", "[ ]"),
        ("(a{0})", "", r#"[ "" ]"#),
        ("((a)|())*", "aa", r#"[ "" "a" "" ]"#),
        ("(a|())*", "a", r#"[ "" "" ]"#),
        ("(()|a)*", "a", r#"[ "" "" ]"#),
        ("(a*)*", "", r#"[ "" ]"#),
        ("(a*)+", "aa", r#"[ "" ]"#),
        ("(a?)*b", "ab", r#"[ "" ]"#),
    ];
    let mut failures = Vec::new();
    for (pattern, input, expected) in cases {
        let actual = nix_match(pattern, input);
        if actual != *expected {
            failures.push(format!("match {pattern:?} {input:?}: expected {expected}, got {actual}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_patterns_recorded_from_cppnix() {
    let invalid = [
        "(", ")", "[a", "\\d", "\\n", "\\w", "\\]", "\\}", "\\/", "\\-", "a\\", "a{", "*a", "(*a)", "a|*b", "^*a",
        "[[:foo:]]", "(?:a)", "a{,2}", "(a)\\1", "a{2,1}", "{", "[a-c-e]", "[[.-.]-/]", "[[:alpha:]-z]", "[[.ab.]]",
        "[[:alpha]", "[[", "a{1", "[]", "[^]", "a{1,2,3}", "a{ 1}", "[z-a]",
    ];
    for pattern in invalid {
        assert!(
            matches!(compile(pattern.as_bytes()), Err(RegexError::Invalid { .. })),
            "{pattern:?} should be rejected"
        );
    }
    assert!(matches!(compile(b"a{100000}"), Err(RegexError::TooLarge { .. })));
    let message = compile(b"(").unwrap_err().to_string();
    assert_eq!(message, "invalid regular expression '('");
}

#[test]
fn split_cases_recorded_from_cppnix() {
    let cases: &[(&str, &str, &str)] = &[
        (",", "a,b,c", r#"[ "a" [ ] "b" [ ] "c" ]"#),
        ("x", "abc", r#"[ "abc" ]"#),
        (",", "", r#"[ "" ]"#),
        (",", ",", r#"[ "" [ ] "" ]"#),
        ("(,)", "a,b", r#"[ "a" [ "," ] "b" ]"#),
        ("([ab])(c)?", "xaycbz", r#"[ "x" [ "a" null ] "yc" [ "b" null ] "z" ]"#),
        ("", "ab", r#"[ "" [ ] "a" [ ] "b" [ ] "" ]"#),
        ("x*", "axxb", r#"[ "" [ ] "a" [ ] "" [ ] "b" [ ] "" ]"#),
        ("(a)|b", "ab", r#"[ "" [ "a" ] "" [ null ] "" ]"#),
        ("a|ab", "xabx", r#"[ "x" [ ] "x" ]"#),
        ("(a|ab)(c|bcd)", "abcd", r#"[ "" [ "a" "bcd" ] "" ]"#),
        ("[[:space:]]+", " a  b ", r#"[ "" [ ] "a" [ ] "b" [ ] "" ]"#),
        ("a*(ab)?", "ab", r#"[ "" [ null ] "" [ null ] "b" [ null ] "" ]"#),
        ("(a|ab)(c|bcd)?", "abcd", r#"[ "" [ "a" "bcd" ] "" ]"#),
        ("a?(ab)?", "ab", r#"[ "" [ null ] "" [ null ] "b" [ null ] "" ]"#),
        ("(a*)(ab)?b?", "aab", r#"[ "" [ "aa" null ] "" [ "" null ] "" ]"#),
    ];
    let mut failures = Vec::new();
    for (pattern, input, expected) in cases {
        let actual = nix_split(pattern, input).replace("[  ]", "[ ]");
        if actual != *expected {
            failures.push(format!("split {pattern:?} {input:?}: expected {expected}, got {actual}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small deterministic generator (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A random, always valid ERE over the alphabet `abc`.
fn random_pattern(rng: &mut Lcg, depth: u32) -> String {
    let atom = |rng: &mut Lcg, depth: u32| -> String {
        match rng.below(if depth == 0 { 4 } else { 7 }) {
            0 => "a".into(),
            1 => "b".into(),
            2 => ["[ab]", "[^a]", ".", "[[:alpha:]]", "c"][rng.below(5)].into(),
            3 => ["^", "$", "a", "b"][rng.below(4)].into(),
            _ => format!("({})", random_pattern(rng, depth - 1)),
        }
    };
    let mut branches = Vec::new();
    for _ in 0..1 + rng.below(if depth == 0 { 1 } else { 3 }) {
        let mut branch = String::new();
        for _ in 0..rng.below(4) {
            let item = atom(rng, depth);
            branch.push_str(&item);
            if item != "^" && item != "$" {
                branch.push_str(["", "", "", "*", "+", "?", "{1,2}", "{2}", "{0,}"][rng.below(9)]);
            }
        }
        branches.push(branch);
    }
    branches.join("|")
}

fn random_input(rng: &mut Lcg) -> String {
    (0..rng.below(7)).map(|_| ['a', 'b', 'c'][rng.below(3)]).collect()
}

#[test]
fn fast_path_agrees_with_depth_first_executor() {
    let mut rng = Lcg(0x5eed);
    let mut compared = 0;
    for _ in 0..3000 {
        let pattern = random_pattern(&mut rng, 2);
        let regex = compile(pattern.as_bytes()).unwrap_or_else(|error| panic!("{pattern:?}: {error}"));
        if regex.fast_full.is_none() {
            continue;
        }
        for _ in 0..5 {
            let input = random_input(&mut rng);
            let fast = regex.full_match(input.as_bytes()).unwrap();
            let slow = regex.full_match_slow(input.as_bytes()).unwrap();
            assert_eq!(fast, slow, "pattern {pattern:?} input {input:?}");
            compared += 1;
        }
    }
    assert!(compared > 5000, "only {compared} comparisons");
}

fn nix_string_literal(text: &str) -> String {
    let mut out = String::from("\"");
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

/// Random patterns and inputs evaluated by CppNix 2.8 in one batch.
#[test]
fn random_patterns_agree_with_cppnix() {
    let nix_instantiate = std::path::Path::new("/usr/bin/nix-instantiate");
    if !nix_instantiate.exists() {
        eprintln!("skipped: /usr/bin/nix-instantiate not installed");
        return;
    }
    let seed = std::env::var("NIVIS_REGEX_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261127u64);
    let mut rng = Lcg(seed);
    let mut cases = Vec::new();
    for _ in 0..400 {
        let pattern = random_pattern(&mut rng, 2);
        let input = random_input(&mut rng);
        cases.push((pattern, input));
    }
    let mut expression = String::from("[\n");
    for (pattern, input) in &cases {
        let _ = writeln!(
            expression,
            "(builtins.match {p} {i}) (builtins.split {p} {i})",
            p = nix_string_literal(pattern),
            i = nix_string_literal(input)
        );
    }
    expression.push(']');
    let output = std::process::Command::new(nix_instantiate)
        .args(["--eval", "--strict", "-E", &expression])
        .env_remove("NIX_PATH")
        .output()
        .expect("running nix-instantiate");
    assert!(output.status.success(), "CppNix failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut ours = String::from("[ ");
    for (pattern, input) in &cases {
        ours.push_str(&nix_match(pattern, input));
        ours.push(' ');
        ours.push_str(&nix_split(pattern, input).replace("[  ]", "[ ]"));
        ours.push(' ');
    }
    ours.push(']');
    let theirs = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
    assert!(theirs.len() > 4000 && theirs.starts_with("[ "), "unexpected CppNix output: {theirs}");
    if ours != theirs {
        // Find the first differing case for a readable message.
        for (pattern, input) in &cases {
            let single = format!(
                "[ (builtins.match {p} {i}) (builtins.split {p} {i}) ]",
                p = nix_string_literal(pattern),
                i = nix_string_literal(input)
            );
            let output = std::process::Command::new(nix_instantiate)
                .args(["--eval", "--strict", "-E", &single])
                .output()
                .expect("running nix-instantiate");
            let theirs = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
            let ours = format!(
                "[ {} {} ]",
                nix_match(pattern, input),
                nix_split(pattern, input).replace("[  ]", "[ ]")
            );
            assert_eq!(ours, theirs, "pattern {pattern:?} input {input:?} (seed {seed})");
        }
        panic!("outputs differ but no single case does (seed {seed})");
    }
}

#[test]
fn split_of_a_long_text_is_fast() {
    let text: Vec<u8> = (0..200_000).map(|i| if i % 80 == 79 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
    let regex = compile(b"\n").unwrap();
    let started = std::time::Instant::now();
    let count = regex.split_matches(&text).count();
    assert_eq!(count, 2500);
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
    // Without a start finder the executor still finds the same matches.
    let mut slow = compile(b"([b-d]+)(x)?").unwrap();
    let expected: Vec<SplitMatch> = slow.split_matches(&text[..5000]).map(Result::unwrap).collect();
    slow.start_finder = None;
    let actual: Vec<SplitMatch> = slow.split_matches(&text[..5000]).map(Result::unwrap).collect();
    assert_eq!(actual, expected);
}

#[test]
fn deep_matches_work_and_deeper_ones_are_an_error_not_a_crash() {
    let regex = compile(b"(a|b)*").unwrap();
    let text = vec![b'a'; 100_000];
    let matches: Vec<SplitMatch> = regex.split_matches(&text).map(Result::unwrap).collect();
    assert_eq!(matches[0].range, 0..100_000);
    assert_eq!(matches[0].groups, vec![Some(99_999..100_000)]);
    let text = vec![b'a'; 1_000_000];
    let result: Result<Vec<SplitMatch>, RegexError> = regex.split_matches(&text).collect();
    assert!(matches!(result, Err(RegexError::TooComplex { .. })), "{result:?}");
}

/// Random token soup (mostly invalid patterns): CppNix 2.8 and this module
/// must agree on which patterns are valid, and on `match`/`split` results
/// for the valid ones.
#[test]
fn random_token_soup_agrees_with_cppnix() {
    let nix_instantiate = std::path::Path::new("/usr/bin/nix-instantiate");
    if !nix_instantiate.exists() {
        eprintln!("skipped: /usr/bin/nix-instantiate not installed");
        return;
    }
    const TOKENS: &[&str] = &[
        "a", "b", "(", ")", "|", "*", "+", "?", "[", "]", "^", "$", ".", "{", "}", ",", "1", "2", "-", "\\", "[:alpha:]",
        "[:digit:]", "[.a.]", "[=b=]", "\\.", "\\(", "\\d", "[^", "a-", "{1}", "{0,1}", "{2,}",
    ];
    let run = |expression: &str| {
        std::process::Command::new(nix_instantiate)
            .args(["--eval", "--strict", "-E", expression])
            .output()
            .expect("running nix-instantiate")
    };
    let mut rng = Lcg(std::env::var("NIVIS_REGEX_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(77));
    let mut valid = Vec::new();
    let mut invalid_checked = 0;
    for _ in 0..400 {
        let pattern: String = (0..1 + rng.below(6)).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        match compile(pattern.as_bytes()) {
            Ok(_) => valid.push(pattern),
            Err(RegexError::Invalid { .. }) if invalid_checked < 40 => {
                invalid_checked += 1;
                let output = run(&format!("builtins.match {} \"\"", nix_string_literal(&pattern)));
                assert!(!output.status.success(), "CppNix accepts {pattern:?}, we reject it");
            }
            Err(_) => {}
        }
    }
    let inputs = ["", "a", "ab", "1-b", "a.b(", "ba1", "[]", "aab2"];
    let mut expression = String::from("[\n");
    let mut ours = String::from("[ ");
    for pattern in &valid {
        for input in inputs {
            let _ = writeln!(
                expression,
                "(builtins.match {p} {i}) (builtins.split {p} {i})",
                p = nix_string_literal(pattern),
                i = nix_string_literal(input)
            );
            ours.push_str(&nix_match(pattern, input));
            ours.push(' ');
            ours.push_str(&nix_split(pattern, input).replace("[  ]", "[ ]"));
            ours.push(' ');
        }
    }
    expression.push(']');
    ours.push(']');
    let output = run(&expression);
    if !output.status.success() {
        // Find the pattern CppNix rejects.
        for pattern in &valid {
            let output = run(&format!("builtins.match {} \"\"", nix_string_literal(pattern)));
            assert!(output.status.success(), "we accept {pattern:?}, CppNix rejects it");
        }
    }
    assert!(valid.len() > 20, "only {} valid patterns", valid.len());
    let theirs = String::from_utf8_lossy(&output.stdout).trim_end().to_string();
    if ours != theirs {
        for pattern in &valid {
            for input in inputs {
                let single = format!(
                    "[ (builtins.match {p} {i}) (builtins.split {p} {i}) ]",
                    p = nix_string_literal(pattern),
                    i = nix_string_literal(input)
                );
                let theirs = String::from_utf8_lossy(&run(&single).stdout).trim_end().to_string();
                let ours = format!("[ {} {} ]", nix_match(pattern, input), nix_split(pattern, input).replace("[  ]", "[ ]"));
                assert_eq!(ours, theirs, "pattern {pattern:?} input {input:?}");
            }
        }
    }
}
