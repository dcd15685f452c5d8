//! End to end below the scheduler: a two-stage derivation chain (stage B runs
//! a program stage A built) is built by nivis the way `nix-store --realise`
//! will drive this crate (parse the `.drv`, build, move, canonicalise, scan,
//! hash), then by CppNix 2.8 in the same store; the NAR hashes, sizes and
//! references CppNix registers must equal ours.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use nivis_build::{BuildRequest, BuildUser, OutputInfo};
use nivis_formats::{Derivation, StoreDir, StorePath, StorePathSet};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds one derivation and returns the registration data of each output.
fn build_derivation(
    store_dir: &StoreDir,
    real_store_dir: &Path,
    drv_path: &StorePath,
    input_closure: &StorePathSet,
) -> BTreeMap<String, (StorePath, OutputInfo)> {
    let contents = fs::read(real_store_dir.join(drv_path.base_name())).expect("read .drv");
    let drv = Derivation::parse(store_dir, &contents).expect("parse .drv");
    let mut request =
        BuildRequest::from_derivation(store_dir, drv_path, &drv, input_closure, real_store_dir).expect("request");
    request.tmp_root = std::env::temp_dir();
    let (mut outcome, log) = build(&request);
    assert!(outcome.status.success(), "building {}: {:?}\n{log}", request.drv_path, outcome.status);
    let owner = BuildUser::current();
    let finished = outcome.finish_outputs(&request, Some((owner.uid, owner.gid))).expect("finish outputs");
    finished
        .into_iter()
        .map(|(name, output)| (name, (store_dir.parse_path(&output.path).expect("output path"), output.info)))
        .collect()
}

fn remove_output(real_path: &Path) {
    for entry in walk(real_path) {
        let _ = fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    }
    if real_path.is_dir() {
        fs::remove_dir_all(real_path).expect("remove output");
    } else {
        fs::remove_file(real_path).expect("remove output");
    }
}

fn walk(path: &Path) -> Vec<PathBuf> {
    let mut paths = vec![path.to_path_buf()];
    if fs::symlink_metadata(path).map(|m| m.is_dir()).unwrap_or(false) {
        for entry in fs::read_dir(path).expect("dir") {
            paths.extend(walk(&entry.expect("entry").path()));
        }
    }
    paths
}

#[test]
fn two_stage_chain_registers_like_cppnix() {
    if !sandbox_available("two_stage_chain_registers_like_cppnix") {
        return;
    }
    if !is_root() || !Command::new("nix-store").arg("--version").output().is_ok_and(|o| o.status.success()) {
        skip_notice!(
            "SKIPPED two_stage_chain_registers_like_cppnix: needs root and CppNix (its sandbox builds the reference)"
        );
        return;
    }
    let root = tempfile::Builder::new().prefix("nivis-build-chain").tempdir().expect("temp dir");
    let bin = root.path().join("busybox/bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("busybox");
    for applet in ["sh", "mkdir", "chmod", "printf", "cat", "ln"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet");
    }
    let store_root = root.path().join("store");
    let expression = format!(
        r#"let
          bb = builtins.path {{ path = {source}; name = "busybox"; }};
          a = derivation {{
            name = "stage-a"; system = "x86_64-linux"; builder = "${{bb}}/bin/sh"; PATH = "${{bb}}/bin";
            outputs = [ "out" "doc" ];
            args = [ "-c" ''
              mkdir -p $out/bin $doc
              printf '#!${{bb}}/bin/sh\necho hello from stage a\n' > $out/bin/hello
              chmod 755 $out/bin/hello
              echo "see $out" > $doc/README
              ln -s $out/bin/hello $doc/hello-link
            '' ];
          }};
        in derivation {{
          name = "stage-b"; system = "x86_64-linux"; builder = "${{bb}}/bin/sh"; PATH = "${{bb}}/bin";
          args = [ "-c" "mkdir $out; ${{a}}/bin/hello > $out/greeting; cat ${{a.doc}}/README > $out/readme" ];
        }}"#,
        source = root.path().join("busybox").display()
    );
    let output = Command::new("nix-instantiate")
        .arg("--store")
        .arg(&store_root)
        .args(["-E", &expression])
        .output()
        .expect("nix-instantiate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store_dir = StoreDir::new("/nix/store").expect("store dir");
    let real_store_dir = store_root.join("nix/store");
    let drv_b = store_dir.parse_path(String::from_utf8_lossy(&output.stdout).trim()).expect("drv path");
    let parsed_b = Derivation::parse(&store_dir, &fs::read(real_store_dir.join(drv_b.base_name())).expect("drv b"))
        .expect("parse");
    let (drv_a, _) = parsed_b.input_derivations.iter().next().expect("stage b depends on stage a");
    let parsed_a = Derivation::parse(&store_dir, &fs::read(real_store_dir.join(drv_a.base_name())).expect("drv a"))
        .expect("parse");

    // Stage A: its closure is its input sources (busybox has no references).
    let outputs_a = build_derivation(&store_dir, &real_store_dir, drv_a, &parsed_a.input_sources);
    // Stage B: its sources plus the closure of A's outputs.
    let mut closure_b = parsed_b.input_sources.clone();
    for (path, info) in outputs_a.values() {
        closure_b.insert(path.clone());
        for reference in &info.references {
            closure_b.insert(store_dir.parse_path(reference).expect("reference"));
        }
    }
    let outputs_b = build_derivation(&store_dir, &real_store_dir, &drv_b, &closure_b);
    let out_b = &outputs_b["out"].0;
    assert_eq!(
        fs::read_to_string(real_store_dir.join(out_b.base_name()).join("greeting")).expect("greeting"),
        "hello from stage a\n"
    );

    // Now CppNix, on the same derivations in the same store (our outputs are not
    // registered there, so it rebuilds them; remove ours first).
    let ours: Vec<(StorePath, OutputInfo)> = outputs_a.into_values().chain(outputs_b.into_values()).collect();
    for (path, _) in &ours {
        remove_output(&real_store_dir.join(path.base_name()));
    }
    let realise = Command::new("nix-store")
        .arg("--store")
        .arg(&store_root)
        .args(["--option", "sandbox", "true", "--option", "substituters", "", "--realise"])
        .arg(store_dir.print_path(&drv_b))
        .output()
        .expect("nix-store --realise");
    assert!(realise.status.success(), "CppNix: {}", String::from_utf8_lossy(&realise.stderr));
    let info = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "path-info", "--json", "--store"])
        .arg(&store_root)
        .args(ours.iter().map(|(path, _)| store_dir.print_path(path)))
        .output()
        .expect("nix path-info");
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stderr));
    let json: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    let theirs: BTreeMap<String, &serde_json::Value> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|entry| (entry["path"].as_str().expect("path").to_string(), entry))
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (path, our_info) in &ours {
        let printed = store_dir.print_path(path);
        let their_info = theirs[&printed];
        assert_eq!(
            our_info.nar_hash.to_sri(),
            their_info["narHash"].as_str().expect("narHash"),
            "NAR hash of {printed}"
        );
        assert_eq!(our_info.nar_size, their_info["narSize"].as_u64().expect("narSize"), "NAR size of {printed}");
        let their_references: BTreeSet<String> = their_info["references"]
            .as_array()
            .expect("references")
            .iter()
            .map(|r| r.as_str().expect("reference").to_string())
            .collect();
        assert_eq!(our_info.references, their_references, "references of {printed}");
    }
}
