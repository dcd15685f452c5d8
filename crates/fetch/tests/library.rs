//! nivis-fetch used directly: archive safety (members that would land
//! outside the target), and the `allow-dirty` setting. The builtins and their
//! agreement with CppNix are tested in crates/glue/tests/fetchers.rs.

use std::path::Path;
use std::process::Command;

use nivis_fetch::{Attr, Attrs, FetchSettings, Input};

fn python(dir: &Path, script: &str) -> bool {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn archive_members_cannot_escape_the_target() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let made = python(
        dir,
        "import io, tarfile, zipfile\n\
         t = tarfile.open('evil.tar.gz', 'w:gz')\n\
         for name in ['top/ok', '../escaped-tar', '/abs-escaped']:\n\
         \x20   data = b'x'\n\
         \x20   info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))\n\
         t.close()\n\
         z = zipfile.ZipFile('evil.zip', 'w')\n\
         z.writestr('top/ok', 'x'); z.writestr('../escaped-zip', 'x')\n\
         z.close()\n",
    );
    if !made {
        eprintln!("skipping: python3 is not available");
        return;
    }
    for archive in ["evil.tar.gz", "evil.zip"] {
        let target = dir.join(format!("out-{archive}"));
        std::fs::create_dir(&target).unwrap();
        // Refusing the whole archive or skipping the member are both safe.
        let result = nivis_fetch::unpack::unpack_archive(&dir.join(archive), &target);
        assert!(
            !dir.join("escaped-tar").exists() && !dir.join("escaped-zip").exists(),
            "{archive} escaped: {result:?}"
        );
        assert!(!Path::new("/abs-escaped").exists());
    }
}

#[test]
fn dirty_git_trees_are_refused_without_allow_dirty() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args([
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.org",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success());
    };
    git(&["init", "--quiet", "-b", "master"]);
    std::fs::write(repo.join("file"), "one\n").unwrap();
    git(&["add", "file"]);
    git(&["commit", "--quiet", "-m", "one"]);
    std::fs::write(repo.join("file"), "two\n").unwrap();

    let store_root = temp.path().join("root");
    let store = nivis_store::open_store(
        &format!("local?root={}", store_root.display()),
        &nivis_store::StoreSettings::default(),
    )
    .unwrap();
    let mut attrs = Attrs::new();
    attrs.insert("type".into(), Attr::String("git".into()));
    attrs.insert("url".into(), Attr::String(format!("file://{}", repo.display())));
    let input = Input::from_attrs(attrs).unwrap();
    let settings = FetchSettings {
        allow_dirty: false,
        cache_dir: temp.path().join("cache"),
        ..FetchSettings::default()
    };
    let error = nivis_fetch::fetch_tree(&*store, &settings, &input).unwrap_err();
    assert_eq!(error.to_string(), format!("Git tree '{}' is dirty", repo.display()));
    // Allowed: the working tree's contents, and no revision.
    let settings = FetchSettings {
        allow_dirty: true,
        warn_dirty: false,
        ..settings
    };
    let fetched = nivis_fetch::fetch_tree(&*store, &settings, &input).unwrap();
    let real = store_root.join("nix/store").join(fetched.store_path.base_name());
    assert_eq!(std::fs::read_to_string(real.join("file")).unwrap(), "two\n");
    assert!(fetched.input.rev().unwrap().is_none());
}
