//! The line syntax of `nix.conf`: `name = value` pairs, `#` comments, and
//! `include PATH` / `!include PATH` lines, as CppNix parses them.

use crate::ConfigError;
use std::path::{Path, PathBuf};

/// One `name = value` line, after includes were expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: String,
}

/// Parses configuration text into assignments in order, expanding includes
/// relative to `base_dir`.
pub fn parse_config_text(
    text: &str,
    origin: &str,
    base_dir: Option<&Path>,
) -> Result<Vec<Assignment>, ConfigError> {
    let mut out = Vec::new();
    parse_into(text, origin, base_dir, &mut out, 0)?;
    Ok(out)
}

/// CppNix has no include depth limit; we stop cycles with one.
const MAX_INCLUDE_DEPTH: usize = 32;

fn parse_into(
    text: &str,
    origin: &str,
    base_dir: Option<&Path>,
    out: &mut Vec<Assignment>,
    depth: usize,
) -> Result<(), ConfigError> {
    for (index, raw_line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = match raw_line.find('#') {
            Some(hash) => &raw_line[..hash],
            None => raw_line,
        };
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.is_empty() {
            continue;
        }
        let syntax_error = || ConfigError::Syntax {
            origin: origin.to_string(),
            line: line_number,
            text: raw_line.trim().to_string(),
        };
        if tokens[0] == "include" || tokens[0] == "!include" {
            if tokens.len() != 2 || depth >= MAX_INCLUDE_DEPTH {
                return Err(syntax_error());
            }
            let path = match base_dir {
                Some(dir) => dir.join(tokens[1]),
                None => PathBuf::from(tokens[1]),
            };
            match std::fs::read_to_string(&path) {
                Ok(included) => {
                    let name = path.display().to_string();
                    parse_into(&included, &name, path.parent(), out, depth + 1)?;
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    if tokens[0] == "include" {
                        return Err(ConfigError::MissingInclude {
                            origin: origin.to_string(),
                            line: line_number,
                            path,
                        });
                    }
                }
                Err(source) => return Err(ConfigError::Read { path, source }),
            }
            continue;
        }
        if tokens.len() < 2 || tokens[1] != "=" {
            return Err(syntax_error());
        }
        out.push(Assignment { name: tokens[0].to_string(), value: tokens[2..].join(" ") });
    }
    Ok(())
}
