//! `ssh://[user@]host`: a store on another machine, reached by running
//! `nix-store --serve --write` there and speaking the serve protocol, as
//! CppNix's `LegacySSHStore`. Query, copy to and copy from; no builds yet.
//!
//! URI parameters: `remote-program` (default `nix-store`), `remote-store`
//! (passed as `--store`), `ssh-key`, `compress`, `max-connections` (accepted;
//! one connection is used).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::Mutex;

use nivis_formats::{ContentAddress, Hash, HashAlgorithm, StoreDir, StorePath, StorePathSet};
use nivis_store::{Store, StoreError, StoreSettings, ValidPathInfo};

use crate::serve::{self, Command as Cmd};
use crate::ssh::SshCommand;
use crate::wire;
use crate::RemoteError;

/// Whether `uri` names a legacy SSH store.
pub fn is_ssh_uri(uri: &str) -> bool {
    uri.starts_with("ssh://")
}

struct Connection {
    child: Child,
    to: BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    remote_version: u64,
    /// Cleared when a command failed half-way: the stream is out of step.
    good: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing stdin ends the remote `--serve` loop; then reap it.
        let _ = self.to.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store served by `nix-store --serve` on a remote host.
pub struct LegacySshStore {
    uri: String,
    host: String,
    store_dir: StoreDir,
    ssh: SshCommand,
    remote_command: String,
    connection: Mutex<Option<Connection>>,
}

fn bad_uri(uri: &str, reason: &str) -> RemoteError {
    RemoteError::BadUri { uri: uri.to_string(), reason: reason.to_string() }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:@+,".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl LegacySshStore {
    /// Parses `ssh://[user@]host[?params]`; the connection is made on first use.
    pub fn open(uri: &str, settings: &StoreSettings) -> Result<LegacySshStore, RemoteError> {
        let rest = uri.strip_prefix("ssh://").ok_or_else(|| bad_uri(uri, "not an ssh:// URI"))?;
        let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
        if host.is_empty() || host.contains('/') {
            return Err(bad_uri(uri, "expected ssh://[user@]host"));
        }
        let mut params = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(k.to_string(), v.to_string());
        }
        let mut ssh = SshCommand { host: host.to_string(), ..SshCommand::default() };
        let mut remote_program = "nix-store".to_string();
        let mut remote_store = None;
        for (key, value) in &params {
            match key.as_str() {
                "remote-program" => remote_program = value.clone(),
                "remote-store" => remote_store = Some(value.clone()),
                "ssh-key" => ssh.ssh_key = Some(value.clone()),
                "compress" => ssh.compress = value == "true",
                "max-connections" | "base64-ssh-public-host-key" | "trusted" | "priority" | "want-mass-query" => {}
                other => return Err(bad_uri(uri, &format!("unknown setting '{other}'"))),
            }
        }
        let mut remote_command = format!("{} --serve --write", shell_quote(&remote_program));
        if let Some(store) = remote_store {
            remote_command.push_str(&format!(" --store {}", shell_quote(&store)));
        }
        let store_dir = StoreDir::new(&settings.store_dir).map_err(|e| bad_uri(uri, &e.to_string()))?;
        Ok(LegacySshStore {
            uri: format!("ssh://{host}"),
            host: host.to_string(),
            store_dir,
            ssh,
            remote_command,
            connection: Mutex::new(None),
        })
    }

    fn connect(&self) -> Result<Connection, RemoteError> {
        let mut child = self.ssh.command(&self.remote_command).spawn().map_err(|e| RemoteError::Connect {
            host: self.host.clone(),
            reason: format!("cannot start '{}': {e}", if self.ssh.is_local() { "sh" } else { "ssh" }),
        })?;
        let to = BufWriter::new(child.stdin.take().expect("piped stdin"));
        let from = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut conn = Connection { child, to, from, remote_version: 0, good: true };
        let io = |what: &str| RemoteError::io(format!("talking to '{}' ({what})", self.host));
        // A failed write (the program exited at once) is reported below with
        // whatever it printed, which says more than "broken pipe".
        let _ = wire::write_u64(&mut conn.to, serve::MAGIC_1)
            .and_then(|()| wire::write_u64(&mut conn.to, serve::PROTOCOL_VERSION))
            .and_then(|()| conn.to.flush());
        let mut first = [0u8; 8];
        let got = read_up_to(&mut conn.from, &mut first);
        if got < 8 || u64::from_le_bytes(first) != serve::MAGIC_2 {
            // Show what the other side said instead (a shell error, a login banner).
            let mut said = first[..got].to_vec();
            let _ = (&mut conn.from).take(4096).read_to_end(&mut said);
            let said = String::from_utf8_lossy(&said).trim_end().to_string();
            return Err(RemoteError::ProtocolMismatch {
                host: self.host.clone(),
                got: if said.is_empty() { None } else { Some(said) },
            });
        }
        conn.remote_version = wire::read_u64(&mut conn.from).map_err(io("handshake"))?;
        if conn.remote_version >> 8 != 2 {
            return Err(RemoteError::UnsupportedVersion(self.host.clone()));
        }
        Ok(conn)
    }

    /// Runs `f` on the connection, connecting first if needed. A failure
    /// part-way through a command drops the connection (the next use reconnects).
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, RemoteError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|c| !c.good) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.connect().map_err(RemoteError::into_store_error)?);
        }
        let conn = slot.as_mut().expect("connected above");
        conn.good = false;
        let result = f(conn, &self.host);
        if result.is_ok() {
            conn.good = true;
        }
        result.map_err(RemoteError::into_store_error)
    }

    fn printed_list(&self, paths: impl Iterator<Item = StorePath>) -> Vec<String> {
        paths.map(|p| self.store_dir.print_path(&p)).collect()
    }

    fn parse(&self, printed: &str) -> Result<StorePath, RemoteError> {
        self.store_dir.parse_path(printed).map_err(|e| RemoteError::Protocol(format!("bad store path '{printed}': {e}")))
    }

    /// The remote's answer to `cmdQueryPathInfos` for some paths.
    fn query_path_infos(&self, paths: &[StorePath]) -> Result<Vec<ValidPathInfo>, StoreError> {
        let printed = self.printed_list(paths.iter().cloned());
        self.with_connection(|conn, host| {
            let io = |what: &str| RemoteError::io(format!("querying path info on '{host}' ({what})"));
            wire::write_u64(&mut conn.to, Cmd::QueryPathInfos as u64).map_err(io("sending"))?;
            wire::write_strings(&mut conn.to, printed.iter().map(String::as_str)).map_err(io("sending"))?;
            conn.to.flush().map_err(io("sending"))?;
            let mut infos = Vec::new();
            loop {
                let path = wire::read_string(&mut conn.from).map_err(io("reading"))?;
                if path.is_empty() {
                    break;
                }
                let path = self.parse(&path)?;
                let deriver = wire::read_string(&mut conn.from).map_err(io("reading"))?;
                let references = wire::read_strings(&mut conn.from).map_err(io("reading"))?;
                let _download_size = wire::read_u64(&mut conn.from).map_err(io("reading"))?;
                let nar_size = wire::read_u64(&mut conn.from).map_err(io("reading"))?;
                let mut info = ValidPathInfo::new(path, Hash::of_bytes(HashAlgorithm::Sha256, b""), nar_size);
                if !deriver.is_empty() {
                    info.deriver = Some(self.parse(&deriver)?);
                }
                for reference in references {
                    info.references.insert(self.parse(&reference)?);
                }
                if conn.remote_version & 0xff >= 4 {
                    let nar_hash = wire::read_string(&mut conn.from).map_err(io("reading"))?;
                    info.nar_hash = Hash::parse_any(&nar_hash, Some(HashAlgorithm::Sha256))
                        .map_err(|e| RemoteError::Protocol(format!("bad NAR hash '{nar_hash}': {e}")))?;
                    let ca = wire::read_string(&mut conn.from).map_err(io("reading"))?;
                    info.ca = ContentAddress::parse_opt(&ca)
                        .map_err(|e| RemoteError::Protocol(format!("bad content address '{ca}': {e}")))?;
                    info.sigs = wire::read_strings(&mut conn.from).map_err(io("reading"))?.into_iter().collect();
                } else {
                    return Err(RemoteError::Protocol(format!(
                        "'{host}' is too old to report NAR hashes (serve protocol {:#x})",
                        conn.remote_version
                    )));
                }
                infos.push(info);
            }
            Ok(infos)
        })
    }

    /// The subset of `paths` valid on the remote (`cmdQueryValidPaths`).
    pub fn query_valid_paths(&self, paths: &StorePathSet) -> Result<StorePathSet, StoreError> {
        let printed = self.printed_list(paths.iter().cloned());
        let valid = self.with_connection(|conn, host| {
            let io = |what: &str| RemoteError::io(format!("querying valid paths on '{host}' ({what})"));
            wire::write_u64(&mut conn.to, Cmd::QueryValidPaths as u64).map_err(io("sending"))?;
            wire::write_bool(&mut conn.to, false).map_err(io("sending"))?; // lock
            wire::write_bool(&mut conn.to, false).map_err(io("sending"))?; // substitute
            wire::write_strings(&mut conn.to, printed.iter().map(String::as_str)).map_err(io("sending"))?;
            conn.to.flush().map_err(io("sending"))?;
            wire::read_strings(&mut conn.from).map_err(io("reading"))
        })?;
        valid.iter().map(|p| self.parse(p).map_err(RemoteError::into_store_error)).collect()
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_up_to(source: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match source.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

impl Store for LegacySshStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError> {
        Ok(self.query_path_infos(std::slice::from_ref(path))?.into_iter().find(|i| &i.path == path))
    }

    fn is_valid_path(&self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(self.query_valid_paths(&std::iter::once(path.clone()).collect())?.contains(path))
    }

    fn add_nar(&self, info: &ValidPathInfo, nar: &mut dyn Read, _repair: bool) -> Result<(), StoreError> {
        let printed = self.store_dir.print_path(&info.path);
        let deriver = info.deriver.as_ref().map(|d| self.store_dir.print_path(d)).unwrap_or_default();
        let references = self.printed_list(info.references.iter().cloned());
        self.with_connection(|conn, host| {
            let io = |what: &str| RemoteError::io(format!("copying '{printed}' to '{host}' ({what})"));
            let to = &mut conn.to;
            if conn.remote_version & 0xff >= 5 {
                wire::write_u64(to, Cmd::AddToStoreNar as u64).map_err(io("sending"))?;
                wire::write_string(to, &printed).map_err(io("sending"))?;
                wire::write_string(to, &deriver).map_err(io("sending"))?;
                wire::write_string(to, &info.nar_hash.to_base16()).map_err(io("sending"))?;
                wire::write_strings(to, references.iter().map(String::as_str)).map_err(io("sending"))?;
                wire::write_u64(to, info.registration_time as u64).map_err(io("sending"))?;
                wire::write_u64(to, info.nar_size).map_err(io("sending"))?;
                wire::write_bool(to, info.ultimate).map_err(io("sending"))?;
                wire::write_strings(to, info.sigs.iter().map(String::as_str)).map_err(io("sending"))?;
                let ca = info.ca.as_ref().map(ToString::to_string).unwrap_or_default();
                wire::write_string(to, &ca).map_err(io("sending"))?;
                let copied = std::io::copy(nar, to).map_err(io("sending the NAR"))?;
                if copied != info.nar_size {
                    return Err(RemoteError::Protocol(format!(
                        "the NAR of '{printed}' is {copied} bytes, not {} as its info says",
                        info.nar_size
                    )));
                }
            } else {
                wire::write_u64(to, Cmd::ImportPaths as u64).map_err(io("sending"))?;
                wire::write_u64(to, 1).map_err(io("sending"))?;
                std::io::copy(nar, to).map_err(io("sending the NAR"))?;
                wire::write_u64(to, serve::EXPORT_MAGIC).map_err(io("sending"))?;
                wire::write_string(to, &printed).map_err(io("sending"))?;
                wire::write_strings(to, references.iter().map(String::as_str)).map_err(io("sending"))?;
                wire::write_string(to, &deriver).map_err(io("sending"))?;
                wire::write_u64(to, 0).map_err(io("sending"))?;
                wire::write_u64(to, 0).map_err(io("sending"))?;
            }
            to.flush().map_err(io("sending"))?;
            match wire::read_u64(&mut conn.from) {
                Ok(1) => Ok(()),
                _ => Err(RemoteError::AddFailed { path: printed.clone(), host: host.to_string() }),
            }
        })
    }

    fn nar_from_path(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        let printed = self.store_dir.print_path(path);
        self.with_connection(|conn, host| {
            let io = |what: &str| RemoteError::io(format!("copying '{printed}' from '{host}' ({what})"));
            wire::write_u64(&mut conn.to, Cmd::DumpStorePath as u64).map_err(io("sending"))?;
            wire::write_string(&mut conn.to, &printed).map_err(io("sending"))?;
            conn.to.flush().map_err(io("sending"))?;
            // The NAR is not framed: parse it to find where it ends.
            let mut tee = TeeReader { inner: &mut conn.from, sink, error: None };
            let parsed = nivis_formats::nar::parse(&mut tee, &mut SkipAll);
            if let Some(e) = tee.error.take() {
                return Err(RemoteError::io(format!("writing the NAR of '{printed}'"))(e));
            }
            parsed.map_err(|e| RemoteError::Protocol(format!("bad NAR of '{printed}' from '{host}': {e}")))
        })
    }
}

/// A `BufRead` that copies every byte its consumer consumes to `sink`.
struct TeeReader<'a, R: BufRead> {
    inner: &'a mut R,
    sink: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl<R: BufRead> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for TeeReader<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if let Some(e) = &self.error {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if self.error.is_none()
            && let Ok(buffer) = self.inner.fill_buf()
            && let Err(e) = self.sink.write_all(&buffer[..amount.min(buffer.len())])
        {
            self.error = Some(e);
        }
        self.inner.consume(amount);
    }
}

/// A NAR visitor that only lets the parser check the structure.
struct SkipAll;

impl nivis_formats::nar::NarVisitor for SkipAll {
    fn directory(&mut self, _path: &Path) -> Result<(), nivis_formats::nar::NarError> {
        Ok(())
    }

    fn regular_file(
        &mut self,
        _path: &Path,
        _executable: bool,
        _size: u64,
        _contents: &mut dyn Read,
    ) -> Result<(), nivis_formats::nar::NarError> {
        Ok(())
    }

    fn symlink(&mut self, _path: &Path, _target: &[u8]) -> Result<(), nivis_formats::nar::NarError> {
        Ok(())
    }
}
