//! NAR writing, parsing and restoring against CppNix 2.8: random trees with
//! awkward names, modes and symlinks must serialise to the very bytes of
//! `nix-store --dump` and hash as `nix-hash` does; NARs must restore to trees
//! CppNix dumps identically; bad archives must fail with typed errors and leave
//! nothing on disk.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Rng, cppnix_path, random_tree};
use nivis_formats::nar::{self, NarError, NarVisitor, NarWriter};
use nivis_formats::{Hash, HashAlgorithm};

fn cppnix_dump(path: &Path) -> Vec<u8> {
    let output = Command::new("/usr/bin/nix-store").arg("--dump").arg(path).output().unwrap();
    assert!(output.status.success(), "nix-store --dump: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn our_dump(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let written = nar::dump_path(path, &mut out).unwrap();
    assert_eq!(written, out.len() as u64);
    out
}

fn cppnix_restore(nar_bytes: &[u8], destination: &Path) {
    let mut child = Command::new("/usr/bin/nix-store")
        .arg("--restore")
        .arg(destination)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(nar_bytes).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Every (relative path, is executable) of regular files below `root`, sorted.
fn executable_bits(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let metadata = fs::symlink_metadata(&dir).unwrap();
        if metadata.is_file() {
            out.push((dir.strip_prefix(root).unwrap().to_path_buf(), metadata.permissions().mode() & 0o7777));
        } else if metadata.is_dir() {
            for entry in fs::read_dir(&dir).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn random_trees_dump_and_hash_like_cppnix() {
    let work = tempfile::tempdir().unwrap();
    for seed in 0..12 {
        let mut rng = Rng::new(100 + seed);
        let root = work.path().join(format!("tree{seed}"));
        random_tree(&mut rng, &root, 0);
        let theirs = cppnix_dump(&root);
        let ours = our_dump(&root);
        assert!(ours == theirs, "seed {seed}: NAR differs from nix-store --dump");

        let algorithm = HashAlgorithm::ALL[seed as usize % 4];
        let (hash, size) = nar::hash_path(&root, algorithm).unwrap();
        assert_eq!(size, theirs.len() as u64);
        assert_eq!(hash, Hash::of_bytes(algorithm, &theirs));
        assert_eq!(hash.to_base16(), cppnix_path("nix-hash", &["--type", algorithm.name()], &root));
    }
}

#[test]
fn single_objects_and_large_files_dump_like_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(7);
    let big = work.path().join("big");
    // Not a multiple of the buffer size or of 8, so the last buffer and the
    // padding are both exercised.
    fs::write(&big, rng.bytes(5 * 1024 * 1024 + 3)).unwrap();
    let empty = work.path().join("empty");
    fs::write(&empty, b"").unwrap();
    let executable = work.path().join("exe");
    fs::write(&executable, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&executable, fs::Permissions::from_mode(0o755)).unwrap();
    let empty_dir = work.path().join("empty-dir");
    fs::create_dir(&empty_dir).unwrap();
    let absolute = work.path().join("absolute-link");
    std::os::unix::fs::symlink("/etc/passwd", &absolute).unwrap();
    let dangling = work.path().join("dangling-link");
    std::os::unix::fs::symlink("no/such/file", &dangling).unwrap();
    for path in [&big, &empty, &executable, &empty_dir, &absolute, &dangling] {
        assert!(our_dump(path) == cppnix_dump(path), "{}", path.display());
    }
    // A directory holding all of them, including the big file.
    assert!(our_dump(work.path()) == cppnix_dump(work.path()));
}

/// The walker hands files and file segments to the consumer thread depending on
/// timing; each policy, forced, must give the same bytes.
#[test]
fn every_handover_policy_dumps_like_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    random_tree(&mut Rng::new(900), &root, 0);
    let mut rng = Rng::new(901);
    // Big files (several segments, an odd tail) among small ones.
    fs::write(root.join("big-a"), rng.bytes(3 * 1024 * 1024 + 13)).unwrap();
    fs::write(root.join("big-b"), rng.bytes(200 * 1024 + 1)).unwrap();
    fs::set_permissions(root.join("big-b"), fs::Permissions::from_mode(0o755)).unwrap();
    let lone = work.path().join("lone-big-file");
    fs::write(&lone, rng.bytes(2 * 1024 * 1024 + 5)).unwrap();
    for path in [&root, &lone] {
        let expected = cppnix_dump(path);
        for low_water in [0, 1, 512 * 1024, u64::MAX] {
            let mut ours = Vec::new();
            let written = nar::dump_path_with_low_water(path, &mut ours, low_water).unwrap();
            assert_eq!(written, ours.len() as u64);
            assert!(ours == expected, "{} with low water {low_water}", path.display());
        }
    }
}

#[test]
fn unsupported_file_types_are_errors() {
    let work = tempfile::tempdir().unwrap();
    let fifo = work.path().join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    assert!(matches!(nar::dump_path(work.path(), &mut Vec::new()), Err(NarError::UnsupportedFileType(p)) if p == fifo));
    assert!(matches!(nar::dump_path(&work.path().join("missing"), &mut Vec::new()), Err(NarError::Io { .. })));
}

/// A sink that fails after some bytes: the dump stops with the sink's error.
#[test]
fn sink_errors_stop_the_dump() {
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 < buf.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("f"), vec![7u8; 3 * 1024 * 1024]).unwrap();
    let error = nar::dump_path(work.path(), &mut Failing(1000)).unwrap_err();
    assert!(matches!(&error, NarError::Stream(e) if e.to_string() == "disk full"), "{error}");
}

/// A file cut short while it is being archived is an error naming it, under
/// every hand-over policy (whichever thread reads it). The sink truncates the
/// file once it has seen 200 bytes of archive (at the latest with the first
/// bytes of the contents); the walker runs at most 16 MiB ahead of the sink,
/// so with 24 MiB there are always bytes left to read that are gone.
#[test]
fn a_file_shrinking_during_the_dump_is_an_error() {
    struct Truncating {
        file: PathBuf,
        seen: usize,
        done: bool,
    }
    impl Write for Truncating {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.seen += buf.len();
            if !self.done && self.seen > 200 {
                fs::OpenOptions::new().write(true).open(&self.file)?.set_len(4096)?;
                self.done = true;
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("shrinking");
    // The file as the root (read by the walker, or in segments by the
    // consumer) and inside a directory (where the consumer may be handed the
    // whole entry and open the file itself).
    for root in [file.clone(), work.path().to_path_buf()] {
        for low_water in [0, 512 * 1024, u64::MAX] {
            fs::write(&file, vec![1u8; 24 * 1024 * 1024]).unwrap();
            let mut sink = Truncating { file: file.clone(), seen: 0, done: false };
            let error = nar::dump_path_with_low_water(&root, &mut sink, low_water).unwrap_err();
            assert!(
                matches!(&error, NarError::FileChanged { path, expected } if *path == file && *expected == 24 * 1024 * 1024),
                "{} with low water {low_water}: {error}",
                root.display()
            );
        }
    }
}

/// Re-serialises what the parser sees with [`NarWriter`]. The writer needs each
/// entry's name before its node; the parser gives full paths, so the name is
/// the last component (none for the root).
struct EntryCopier(NarWriter<Vec<u8>>);

impl EntryCopier {
    fn enter(&mut self, path: &Path) -> Result<(), NarError> {
        match path.file_name() {
            Some(name) => self.0.entry(name.as_bytes()),
            None => Ok(()),
        }
    }
}

impl NarVisitor for EntryCopier {
    fn directory(&mut self, path: &Path) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.begin_directory()
    }
    fn end_directory(&mut self, _path: &Path) -> Result<(), NarError> {
        self.0.end_directory()
    }
    fn regular_file(&mut self, path: &Path, executable: bool, size: u64, contents: &mut dyn Read) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.regular_file(executable, size, contents)
    }
    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.symlink(target)
    }
}

#[test]
fn parse_then_write_reproduces_the_archive() {
    let work = tempfile::tempdir().unwrap();
    for seed in 0..6 {
        let root = work.path().join(format!("tree{seed}"));
        random_tree(&mut Rng::new(200 + seed), &root, 0);
        let original = cppnix_dump(&root);
        let mut copier = EntryCopier(NarWriter::new(Vec::new()).unwrap());
        let mut reader = &original[..];
        nar::parse(&mut reader, &mut copier).unwrap();
        assert!(reader.is_empty(), "the parser must consume the whole archive");
        assert!(copier.0.finish().unwrap() == original, "seed {seed}");
    }
    // A lone file as the root.
    let file = work.path().join("single");
    fs::write(&file, b"contents").unwrap();
    let original = cppnix_dump(&file);
    let mut copier = EntryCopier(NarWriter::new(Vec::new()).unwrap());
    nar::parse(&mut &original[..], &mut copier).unwrap();
    assert_eq!(copier.0.finish().unwrap(), original);
}

#[test]
fn parser_stops_at_the_end_of_the_archive() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("f");
    fs::write(&file, b"data").unwrap();
    let mut stream = cppnix_dump(&file);
    let archive_len = stream.len();
    stream.extend_from_slice(b"trailing protocol bytes");
    let mut reader = std::io::BufReader::with_capacity(3, &stream[..]);
    nar::parse(&mut reader, &mut EntryCopier(NarWriter::new(Vec::new()).unwrap())).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, &stream[archive_len..]);
}

#[test]
fn restore_matches_cppnix_restore() {
    let work = tempfile::tempdir().unwrap();
    for seed in 0..6 {
        let root = work.path().join(format!("tree{seed}"));
        random_tree(&mut Rng::new(300 + seed), &root, 0);
        let archive = cppnix_dump(&root);
        let ours = work.path().join(format!("ours{seed}"));
        let theirs = work.path().join(format!("theirs{seed}"));
        nar::restore_path(&mut &archive[..], &ours).unwrap();
        cppnix_restore(&archive, &theirs);
        assert!(cppnix_dump(&ours) == archive, "seed {seed}");
        assert_eq!(executable_bits(&ours), executable_bits(&theirs), "seed {seed}");
    }
    // Restoring onto an existing path is refused, as CppNix refuses.
    let file = work.path().join("f");
    fs::write(&file, b"x").unwrap();
    let archive = cppnix_dump(&file);
    assert!(matches!(nar::restore_path(&mut &archive[..], &file), Err(NarError::AlreadyExists(_))));
    // A single file and a single symlink restore too.
    let restored = work.path().join("restored-file");
    nar::restore_path(&mut &archive[..], &restored).unwrap();
    assert_eq!(fs::read(&restored).unwrap(), b"x");
}

// ---- bad input ----------------------------------------------------------

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len().div_ceil(8) * 8, 0);
}

fn tokens(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        string(&mut out, part);
    }
    out
}

/// A directory with the given entries, each a one-byte regular file.
fn directory_nar(names: &[&[u8]]) -> Vec<u8> {
    let mut out = tokens(&[b"nix-archive-1", b"(", b"type", b"directory"]);
    for name in names {
        out.extend(tokens(&[b"entry", b"(", b"name", name, b"node", b"(", b"type", b"regular", b"contents", b"x", b")", b")"]));
    }
    out.extend(tokens(&[b")"]));
    out
}

/// Parses and restores `archive`, expecting `check` to accept the error from
/// both, and checks the failed restore left nothing in its directory.
fn assert_rejected(archive: &[u8], check: impl Fn(&NarError) -> bool) {
    let mut sink = EntryCopier(NarWriter::new(Vec::new()).unwrap());
    let error = nar::parse(&mut &archive[..], &mut sink).unwrap_err();
    assert!(check(&error), "unexpected parse error: {error:?}");
    let work = tempfile::tempdir().unwrap();
    let error = nar::restore_path(&mut &archive[..], &work.path().join("out")).unwrap_err();
    assert!(check(&error), "unexpected restore error: {error:?}");
    assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0, "a failed restore left files behind");
}

#[test]
fn well_formed_hand_built_archive_is_accepted() {
    // The builder used by the bad-input tests makes archives CppNix accepts.
    let archive = directory_nar(&[b"a", b"b"]);
    let work = tempfile::tempdir().unwrap();
    cppnix_restore(&archive, &work.path().join("theirs"));
    nar::restore_path(&mut &archive[..], &work.path().join("ours")).unwrap();
    assert_eq!(cppnix_dump(&work.path().join("theirs")), archive);
    assert_eq!(fs::read(work.path().join("ours/b")).unwrap(), b"x");
}

#[test]
fn truncated_archives_are_rejected_at_every_length() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    random_tree(&mut Rng::new(400), &root, 0);
    let archive = cppnix_dump(&root);
    for len in (0..archive.len()).step_by(archive.len() / 97 + 1).chain([archive.len() - 1]) {
        assert_rejected(&archive[..len], |e| matches!(e, NarError::Truncated | NarError::BadMagic));
    }
}

#[test]
fn bad_magic_is_rejected() {
    assert_rejected(b"", |e| matches!(e, NarError::BadMagic));
    assert_rejected(&tokens(&[b"nix-archive-2", b"("]), |e| matches!(e, NarError::BadMagic));
    assert_rejected(&[0xffu8; 64], |e| matches!(e, NarError::BadMagic));
}

#[test]
fn lying_lengths_are_rejected() {
    // A file that claims more bytes than follow.
    let mut archive = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    archive.extend_from_slice(&1000u64.to_le_bytes());
    archive.extend_from_slice(b"short\0\0\0");
    assert_rejected(&archive, |e| matches!(e, NarError::Truncated));
    // A file that claims fewer: the rest of its data is read as the next token.
    let mut archive = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    archive.extend_from_slice(&2u64.to_le_bytes());
    archive.extend_from_slice(b"0123456789abcdef");
    archive.extend(tokens(&[b")"]));
    assert_rejected(&archive, |e| matches!(e, NarError::BadPadding | NarError::StringTooLong(_)));
    // A name whose length is absurd must not be allocated.
    let mut archive = tokens(&[b"nix-archive-1", b"(", b"type", b"directory", b"entry", b"(", b"name"]);
    archive.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_rejected(&archive, |e| matches!(e, NarError::StringTooLong(_)));
}

#[test]
fn bad_padding_is_rejected() {
    let mut archive = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents", b"abc", b")"]);
    // The padding of "abc" starts at 5 * 16 + 8 + 3.
    let padding_at = tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]).len() + 8 + 3;
    archive[padding_at] = 1;
    assert_rejected(&archive, |e| matches!(e, NarError::BadPadding));
}

#[test]
fn unsorted_duplicate_and_invalid_names_are_rejected() {
    assert_rejected(&directory_nar(&[b"b", b"a"]), |e| matches!(e, NarError::UnsortedEntries { .. }));
    assert_rejected(&directory_nar(&[b"a", b"a"]), |e| matches!(e, NarError::UnsortedEntries { .. }));
    // "B" (0x42) sorts before "a" (0x61): byte order, not case-insensitive.
    assert_rejected(&directory_nar(&[b"a", b"B"]), |e| matches!(e, NarError::UnsortedEntries { .. }));
    for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"nul\0byte"] {
        assert_rejected(&directory_nar(&[bad]), |e| matches!(e, NarError::InvalidName(_)));
    }
}

#[test]
fn wrong_structure_is_rejected() {
    let unexpected = |e: &NarError| matches!(e, NarError::UnexpectedToken { .. });
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"type", b"fifo", b")"]), unexpected);
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"kind", b"regular"]), unexpected);
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"type", b"regular", b"executable", b"yes"]), unexpected);
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target", b"x", b"extra"]), unexpected);
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"type", b"directory", b"entry", b"(", b"node"]), unexpected);
    assert_rejected(&tokens(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target", b"", b")"]), |e| {
        matches!(e, NarError::InvalidTarget(_))
    });
}

/// A restore that fails deep inside a tree removes everything it created.
#[test]
fn failed_restore_deep_in_a_tree_cleans_up() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("a/b/c/file"), vec![1u8; 100_000]).unwrap();
    fs::write(root.join("z"), b"last").unwrap();
    let archive = cppnix_dump(&root);
    assert_rejected(&archive[..archive.len() - 20], |e| matches!(e, NarError::Truncated));
}

#[test]
fn writer_refuses_misuse() {
    let mut writer = NarWriter::new(Vec::new()).unwrap();
    assert!(matches!(writer.entry(b"x"), Err(NarError::Misuse(_))));
    writer.begin_directory().unwrap();
    writer.entry(b"b").unwrap();
    writer.regular_file_from_bytes(false, b"").unwrap();
    assert!(matches!(writer.entry(b"a"), Err(NarError::UnsortedEntries { .. })));
    assert!(matches!(writer.entry(b"a/b"), Err(NarError::InvalidName(_))));
    let writer_result = {
        let mut w = NarWriter::new(Vec::new()).unwrap();
        w.begin_directory().unwrap();
        w.finish()
    };
    assert!(matches!(writer_result, Err(NarError::Misuse(_))));
}
