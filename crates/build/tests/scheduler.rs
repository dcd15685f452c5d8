//! The scheduler through its library API, on a local chroot store whose
//! `.drv` files CppNix 2.8 wrote (`nix-instantiate --store`): the
//! substitution hook is asked first and a substituted output is not built
//! (nor are its inputs), `keep_going` decides whether a failure stops the
//! rest, and outputs are registered with deriver, `ultimate` and references.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BUSYBOX, sandbox_available};
use nivis_build::{BuildSettings, DerivedPath, FailureKind, SubstitutablePath, Substituter, query_missing, realise};
use nivis_formats::{Hash, HashAlgorithm, StorePath, StorePathSet};
use nivis_store::{Store, StoreSettings, ValidPathInfo};

fn instantiate(root: &Path, expression: &str) -> Option<Vec<String>> {
    let output = Command::new("/usr/bin/nix-instantiate").arg("--store").arg(root).args(["-E", expression]).output().ok()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Some(String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect())
}

fn setup(test: &str, body: &str) -> Option<(tempfile::TempDir, Box<dyn Store>, Vec<StorePath>)> {
    if !sandbox_available(test) {
        return None;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/nix-instantiate").exists() {
        skip_notice!("SKIPPED {test}: needs root and CppNix's nix-instantiate to write the .drv files");
        return None;
    }
    let dir = tempfile::Builder::new().prefix("nivis-scheduler").tempdir().expect("temp dir");
    let bin = dir.path().join("bb/bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("busybox");
    for applet in ["sh", "mkdir", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet");
    }
    let expression = format!(
        r#"let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: script: extra: derivation ({{ inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh"; PATH = "${{bb}}/bin"; args = [ "-c" script ]; }} // extra);
in {body}"#,
        dir = dir.path().display()
    );
    let root = dir.path().join("store");
    let drvs = instantiate(&root, &expression)?;
    let store = nivis_store::open_store(root.to_str().expect("utf-8"), &StoreSettings::from_env()).expect("open store");
    let paths = drvs.iter().map(|p| store.parse_store_path(p).expect("drv path")).collect();
    Some((dir, store, paths))
}

fn settings(dir: &Path) -> BuildSettings {
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).expect("tmp");
    BuildSettings { print_build_logs: false, tmp_root: tmp, ..BuildSettings::default() }
}

/// A substituter that records what it was asked for and makes the paths
/// whose name ends in `-cached` valid (a file holding "from cache").
struct FakeCache {
    asked: RefCell<Vec<StorePathSet>>,
}

impl Substituter for FakeCache {
    fn substitute(&self, store: &dyn Store, paths: &StorePathSet) -> Result<StorePathSet, String> {
        self.asked.borrow_mut().push(paths.clone());
        let mut made = StorePathSet::new();
        for path in paths.iter().filter(|p| p.name().ends_with("-cached")) {
            let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
            fs::write(file.path(), "from cache").map_err(|e| e.to_string())?;
            let mut nar = Vec::new();
            nivis_store::dump_path(file.path(), &mut nar).map_err(|e| e.to_string())?;
            let info = ValidPathInfo::new(path.clone(), Hash::of_bytes(HashAlgorithm::Sha256, &nar), nar.len() as u64);
            store.add_nar(&info, &mut &nar[..], false).map_err(|e| e.to_string())?;
            made.insert(path.clone());
        }
        Ok(made)
    }

    fn query_substitutable(
        &self,
        _store: &dyn Store,
        paths: &StorePathSet,
    ) -> Result<BTreeMap<StorePath, SubstitutablePath>, String> {
        let offered = paths.iter().filter(|p| p.name().ends_with("-cached"));
        Ok(offered.map(|p| (p.clone(), SubstitutablePath { nar_size: 112, ..Default::default() })).collect())
    }
}

#[test]
fn substituted_outputs_are_not_built() {
    let Some((dir, store, drvs)) = setup(
        "substituted_outputs_are_not_built",
        r#"let dep = mk "never-built" "exit 1" {}; in [
  (mk "top-cached" "echo ${dep} > $out" {})
  (mk "top-built" "echo built > $out" {})
]"#,
    ) else {
        return;
    };
    let cache = FakeCache { asked: RefCell::new(Vec::new()) };
    let targets: Vec<DerivedPath> = drvs.iter().map(|d| DerivedPath { drv_path: d.clone(), outputs: None }).collect();
    // The summary: the cached output will be fetched, the other built, and the
    // dependency of the cached one is not needed at all.
    let missing = query_missing(store.as_ref(), &targets, Some(&cache)).expect("query_missing");
    assert_eq!(missing.will_build.iter().map(|p| p.name()).collect::<Vec<_>>(), vec!["top-built.drv"]);
    assert_eq!(missing.will_substitute.iter().map(|p| p.name()).collect::<Vec<_>>(), vec!["top-cached"]);
    assert_eq!(missing.nar_size, 112);
    let without = query_missing(store.as_ref(), &targets, None).expect("query_missing");
    assert_eq!(without.will_build.len(), 3, "without a cache, everything is built: {without:?}");
    assert!(cache.asked.borrow().is_empty(), "the summary fetched nothing");
    let result = realise(store.as_ref(), &targets, &settings(dir.path()), Some(&cache)).expect("realise");
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    // Asked once, for both top-level outputs; `never-built` was never visited.
    let asked = cache.asked.borrow();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let names: Vec<&str> = asked[0].iter().map(|p| p.name()).collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"top-cached") && names.contains(&"top-built"), "{names:?}");
    assert_eq!(result.built, vec![drvs[1].clone()]);
    let built_out = &result.outputs[&drvs[1]]["out"];
    let info = store.query_path_info(built_out).expect("query").expect("valid");
    assert_eq!(info.deriver.as_ref(), Some(&drvs[1]));
    assert!(info.ultimate);
    let cached_out = &result.outputs[&drvs[0]]["out"];
    assert_eq!(fs::read_to_string(store.real_path(cached_out).expect("real")).expect("read"), "from cache");
}

#[test]
fn keep_going_decides_whether_a_failure_stops_the_rest() {
    let Some((dir, store, drvs)) = setup(
        "keep_going_decides_whether_a_failure_stops_the_rest",
        r#"let
  bad = mk "bad" "exit 7" {};
in [ bad (mk "needs-bad" "cat ${bad} > $out" {}) (mk "fine-1" "echo 1 > $out" {}) (mk "fine-2" "echo 2 > $out" {}) ]"#,
    ) else {
        return;
    };
    let targets: Vec<DerivedPath> = drvs.iter().map(|d| DerivedPath { drv_path: d.clone(), outputs: None }).collect();
    let mut stop = settings(dir.path());
    stop.max_jobs = 1;
    let stopped = realise(store.as_ref(), &targets, &stop, None).expect("realise");
    assert_eq!(stopped.exit_status(), 100);
    assert!(
        stopped.failures.iter().any(|f| f.kind == FailureKind::BuilderFailed
            && f.drv_path.ends_with("-bad.drv")
            && f.message.contains("-bad.drv' failed with exit code 7")),
        "{:?}",
        stopped.failures
    );
    assert!(stopped.failures.iter().any(|f| f.kind == FailureKind::DependencyFailed && f.drv_path.ends_with("-needs-bad.drv")));
    let built_before_stop = stopped.built.len();

    let mut going = settings(dir.path());
    going.keep_going = true;
    let kept_going = realise(store.as_ref(), &targets, &going, None).expect("realise");
    // Everything that does not depend on `bad` is built by the end.
    assert_eq!(built_before_stop + kept_going.built.len(), 2, "stopped run built {built_before_stop}");
    for drv in &drvs[2..] {
        assert!(kept_going.outputs.contains_key(drv) || stopped.outputs.contains_key(drv));
    }
    assert_eq!(kept_going.exit_status(), 100);
}
