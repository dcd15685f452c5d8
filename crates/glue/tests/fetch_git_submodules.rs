//! `fetchGit` with `submodules = true` against CppNix 2.8: a superproject
//! with a submodule, clean and with uncommitted changes. Git refuses `file`
//! transport for submodules by default since 2.38; both sides get
//! `protocol.file.allow=always` through the environment, which is why this
//! test is alone in its binary (it sets the variables before anything runs).

use std::path::Path;
use std::process::Command;
use std::rc::Rc;

use nivis_glue::{FetchSettings, StoreEvalIO, set_thread_fetch_settings};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "2023-04-05T06:07:08Z")
        .env("GIT_COMMITTER_DATE", "2023-04-05T06:07:08Z")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} failed");
}

fn nivis(dir: &Path, expr: &str) -> String {
    let expr = expr.to_string();
    let root = dir.join("nivis-root");
    let settings = FetchSettings {
        cache_dir: dir.join("nivis-cache"),
        ..FetchSettings::default()
    };
    nivis_eval::run_with_big_stack(64 << 20, move || {
        set_thread_fetch_settings(Some(settings));
        let store = nivis_store::open_store(
            &format!("local?root={}", root.display()),
            &nivis_store::StoreSettings::default(),
        )
        .unwrap();
        let mut eval = nivis_eval::Eval::new(Rc::new(StoreEvalIO::new(store, false)), nivis_eval::Settings::default());
        let parsed = eval.parse_string(&expr, Path::new("/")).unwrap();
        let value = eval.eval_expr(parsed).map_err(|e| e.to_string()).unwrap();
        let value = eval.force_deep(&value, nivis_eval::Pos::NONE).unwrap();
        nivis_eval::print::print_value(&mut eval, &value, true).unwrap()
    })
}

fn cppnix(dir: &Path, expr: &str) -> Option<String> {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        return None;
    }
    let output = Command::new("/usr/bin/nix-instantiate")
        .args(["--store", &format!("local?root={}", dir.join("cppnix-root").display())])
        .args(["--eval", "--strict", "-E", expr])
        .env("HOME", dir.join("cppnix-home"))
        .env("XDG_CACHE_HOME", dir.join("cppnix-home/cache"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "CppNix failed on {expr}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).unwrap().trim_end().to_string())
}

#[test]
fn fetch_git_with_submodules_matches_cppnix() {
    // SAFETY: the only test of this binary, before any thread reads the environment.
    unsafe {
        std::env::set_var("GIT_CONFIG_COUNT", "1");
        std::env::set_var("GIT_CONFIG_KEY_0", "protocol.file.allow");
        std::env::set_var("GIT_CONFIG_VALUE_0", "always");
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let sub = dir.join("sub");
    let top = dir.join("top");
    for repo in [&sub, &top] {
        std::fs::create_dir_all(repo).unwrap();
        git(repo, &["init", "--quiet", "-b", "master"]);
    }
    std::fs::write(sub.join("inner"), "inside the submodule\n").unwrap();
    git(&sub, &["add", "-A"]);
    git(&sub, &["commit", "--quiet", "-m", "sub"]);
    std::fs::write(top.join("outer"), "outside\n").unwrap();
    git(
        &top,
        &["submodule", "--quiet", "add", &sub.to_string_lossy(), "deps/sub"],
    );
    git(&top, &["add", "-A"]);
    git(&top, &["commit", "--quiet", "-m", "top"]);

    let t = top.display();
    let expr = format!(
        "[ (builtins.fetchGit {{ url = {t}; submodules = true; }}) (builtins.fetchGit {{ url = {t}; }}) \
           (builtins.fetchGit {{ url = {t}; ref = \"master\"; submodules = true; }}) ]"
    );
    let ours = nivis(dir, &expr);
    assert!(ours.contains("submodules = true;"), "{ours}");
    if let Some(theirs) = cppnix(dir, &expr) {
        assert_eq!(ours, theirs);
    }
    // Uncommitted changes: the working tree, submodule files included.
    std::fs::write(top.join("outer"), "changed\n").unwrap();
    let dirty = format!("builtins.fetchGit {{ url = {t}; submodules = true; }}");
    let ours = nivis(dir, &dirty);
    assert!(ours.contains("revCount = 0;"), "{ours}");
    if let Some(theirs) = cppnix(dir, &dirty) {
        assert_eq!(ours, theirs);
    }
}
