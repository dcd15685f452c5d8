//! How CppNix runs a command on a remote machine: the system `ssh` with `-x -a`
//! (no X11 or agent forwarding), the user's `NIX_SSHOPTS` (split on white space), the
//! store's `ssh-key` as `-i` and `compress` as `-C`. For the host `localhost`
//! CppNix 2.8 does not use ssh at all but runs the command in a local shell,
//! and so do we.

use std::process::{Command, Stdio};

/// One remote command line, ready to spawn.
#[derive(Debug, Clone, Default)]
pub struct SshCommand {
    /// `[user@]host`, as written in the store URI.
    pub host: String,
    pub ssh_key: Option<String>,
    pub compress: bool,
}

impl SshCommand {
    /// Whether the command runs locally instead of through ssh.
    pub fn is_local(&self) -> bool {
        self.host == "localhost"
    }

    /// The process that runs `remote_command` (a shell command line) on the host,
    /// with piped stdin and stdout; stderr is passed through, as CppNix does.
    pub fn command(&self, remote_command: &str) -> Command {
        let mut command;
        if self.is_local() {
            command = Command::new("sh");
            command.arg("-c").arg(remote_command);
        } else {
            command = Command::new("ssh");
            command.arg(&self.host).arg("-x").arg("-a");
            if let Ok(options) = std::env::var("NIX_SSHOPTS") {
                command.args(options.split_whitespace());
            }
            if let Some(key) = &self.ssh_key {
                command.arg("-i").arg(key);
            }
            if self.compress {
                command.arg("-C");
            }
            command.arg(remote_command);
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        command
    }
}
