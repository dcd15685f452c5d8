//! `derivationStrict` on the store side: from the evaluated attributes to a
//! written `.drv` and its output paths, as CppNix's `prim_derivationStrict` does.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use nivis_eval::io::{DerivationRequest, DerivationResult};
use nivis_eval::IoError;
use nivis_formats::derivation::downstream_placeholder;
use nivis_formats::{
    Derivation, DerivationError, DerivationOutput, FileIngestionMethod, Hash, HashAlgorithm, HashPart, StorePath,
    StorePathError, StorePathSet, check_name,
};
use nivis_store::{ClosureOptions, compute_closure};

use crate::{StoreEvalIO, store_error};

/// Errors inside hash-modulo computation: either reading an input derivation
/// failed or the derivation itself is malformed.
struct GlueError(IoError);

impl From<DerivationError> for GlueError {
    fn from(error: DerivationError) -> Self {
        GlueError(IoError::Message(error.to_string()))
    }
}

impl From<StorePathError> for GlueError {
    fn from(error: StorePathError) -> Self {
        GlueError(IoError::Message(error.to_string()))
    }
}

fn message(text: impl Into<String>) -> IoError {
    IoError::Message(text.into())
}

/// The value of a derivation attribute as a string: from the environment, or from
/// the JSON of structured attributes (where the environment holds only `__json`).
fn attribute<'a>(
    env: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    structured: Option<&'a serde_json::Value>,
    name: &str,
) -> Option<Cow<'a, str>> {
    match structured {
        Some(json) => json.get(name).map(|value| match value {
            serde_json::Value::String(s) => Cow::Borrowed(s.as_str()),
            serde_json::Value::Bool(true) => Cow::Borrowed("1"),
            serde_json::Value::Bool(false) => Cow::Borrowed(""),
            other => Cow::Owned(other.to_string()),
        }),
        None => env.get(name.as_bytes()).map(|value| String::from_utf8_lossy(value)),
    }
}

fn is_true(value: Option<Cow<'_, str>>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

pub(crate) fn derivation_strict(io: &StoreEvalIO, request: DerivationRequest) -> Result<DerivationResult, IoError> {
    let store_dir = io.store_dir();
    let DerivationRequest { name, system, builder, args, outputs, env, structured_attrs, context } = request;
    let name = name.as_str();
    // CppNix checks these in this order, after evaluating every attribute.
    if builder.is_empty() {
        return Err(message("required attribute 'builder' missing"));
    }
    if system.is_empty() {
        return Err(message("required attribute 'system' missing"));
    }
    if name.ends_with(".drv") {
        // (Current CppNix allows it only for a text-hashed derivation
        // producing one derivation file, which needs dynamic derivations.)
        return Err(message("derivation names are allowed to end in '.drv' only if they produce a single derivation file"));
    }
    check_name(name, name).map_err(|e| message(e.to_string()))?;

    let structured = match &structured_attrs {
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(&String::from_utf8_lossy(text))
                .map_err(|e| message(format!("internal error: structured attributes are not JSON: {e}")))?,
        ),
        None => None,
    };

    // The strings are moved, not copied, into the derivation.
    let mut drv = Derivation { platform: system, builder, args, ..Derivation::default() };
    match structured_attrs {
        Some(json) => {
            drv.env.insert(b"__json".to_vec(), json);
        }
        // The request is in name order already: the map is built in bulk,
        // not by an insertion per variable.
        None => drv.env = env.into_iter().map(|(key, value)| (key.into_bytes(), value)).collect(),
    }

    add_context_inputs(io, &context, &mut drv)?;
    declare_outputs(&outputs, &drv.env, structured.as_ref(), name, &mut drv.outputs)?;

    let hashes = &io.drv_hashes;
    // One buffer for the `.drv` text of every derivation of the evaluation.
    let mut aterm = io.aterm_buffer.take();
    let (drv_path, own_hash) = drv
        .instantiate(
            store_dir,
            name,
            |input: &StorePath| {
                hashes.borrow_mut().hash_of(store_dir, input, &mut |path| read_derivation(io, path).map_err(GlueError))
            },
            &mut aterm,
        )
        .map_err(|GlueError(e)| e)?;
    if !io.read_only {
        io.store
            .add_text_to_store(&format!("{name}.drv"), &aterm, &drv.references(), false)
            .map_err(store_error)?;
    }
    io.aterm_buffer.replace(aterm);

    // Remember the hash of the unmasked derivation for the derivations that will
    // depend on this one, as CppNix does right after writing it.
    hashes.borrow_mut().insert(drv_path.clone(), own_hash);

    let outputs = drv
        .outputs
        .iter()
        .map(|(output_name, output)| {
            let printed = match output.path() {
                Some(path) => store_dir.print_path(path),
                None => downstream_placeholder(&drv_path, output_name),
            };
            (output_name.clone(), printed)
        })
        .collect();
    // Only the output names are kept: the hash of this derivation is in the
    // cache already, and `=drv` contexts need nothing else (a large evaluation
    // would otherwise hold every derivation's environment until it ends).
    let names = {
        let mut lists = io.output_name_lists.borrow_mut();
        let names: Vec<String> = drv.outputs.keys().cloned().collect();
        match lists.get(names.as_slice()) {
            Some(shared) => shared.clone(),
            None => {
                let list: std::sync::Arc<[String]> = names.into();
                lists.insert(list.clone());
                list
            }
        }
    };
    io.computed_outputs.borrow_mut().insert(HashPart::of(&drv_path), names);
    Ok(DerivationResult { drv_path: store_dir.print_path(&drv_path), outputs })
}

/// Turns the string context of the attributes into input derivations and
/// sources: `!out!drv` needs one output, `=drv` the derivation's whole closure
/// (what `unsafeDiscardOutputDependency` leaves), a plain path itself.
fn add_context_inputs(io: &StoreEvalIO, context: &[String], drv: &mut Derivation) -> Result<(), IoError> {
    for element in context {
        if let Some(drv_path) = element.strip_prefix('=') {
            let drv_path = io.parse_path(drv_path)?;
            let closure = compute_closure(io.store(), &StorePathSet::from([drv_path]), ClosureOptions::default())
                .map_err(store_error)?;
            for path in closure {
                if path.is_derivation() {
                    let outputs: BTreeSet<String> = match io.computed_outputs.borrow().get(&HashPart::of(&path)) {
                        Some(names) => names.iter().cloned().collect(),
                        None => read_derivation(io, &path)?.outputs.keys().cloned().collect(),
                    };
                    drv.input_derivations.insert(path.clone(), outputs);
                }
                drv.input_sources.insert(path);
            }
        } else if let Some(rest) = element.strip_prefix('!') {
            let (output, drv_path) = rest
                .split_once('!')
                .ok_or_else(|| message(format!("invalid string context element '{element}'")))?;
            let drv_path = io.parse_path(drv_path)?;
            drv.input_derivations.entry(drv_path).or_default().insert(output.to_string());
        } else {
            drv.input_sources.insert(io.parse_path(element)?);
        }
    }
    Ok(())
}

/// Declares each output's kind: fixed (`outputHash`), floating content-addressed
/// (`__contentAddressed`) or input-addressed; paths are filled in later.
fn declare_outputs(
    output_names: &[String],
    env: &BTreeMap<Vec<u8>, Vec<u8>>,
    structured: Option<&serde_json::Value>,
    name: &str,
    outputs: &mut BTreeMap<String, DerivationOutput>,
) -> Result<(), IoError> {
    let method = match attribute(env, structured, "outputHashMode").as_deref() {
        None | Some("flat") => FileIngestionMethod::Flat,
        // `nar` is current CppNix's name for it.
        Some("recursive" | "nar") => FileIngestionMethod::Recursive,
        Some(other) => return Err(message(format!("invalid value '{other}' for 'outputHashMode' attribute"))),
    };
    let algorithm = match attribute(env, structured, "outputHashAlgo").as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            HashAlgorithm::from_name(text).ok_or_else(|| message(format!("unknown hash algorithm '{text}'")))?,
        ),
    };
    if let Some(output_hash) = attribute(env, structured, "outputHash") {
        if output_names.len() != 1 || output_names[0] != "out" {
            return Err(message(format!(
                "multiple outputs are not supported in fixed-output derivations, in derivation '{name}'"
            )));
        }
        let hash = if output_hash.is_empty() {
            let algorithm = algorithm.ok_or_else(|| message("empty hash requires explicit hash type"))?;
            let zero = Hash::from_digest(algorithm, &vec![0u8; algorithm.size()]).map_err(|e| message(e.to_string()))?;
            eprintln!("warning: found empty hash, assuming '{}'", zero.to_sri());
            zero
        } else {
            Hash::parse_any(&output_hash, algorithm).map_err(|e| message(e.to_string()))?
        };
        // The placeholder path is replaced by `fill_output_paths`.
        let placeholder = StorePath::from_digest(&[0; 20], name).map_err(|e| message(e.to_string()))?;
        outputs.insert("out".to_string(), DerivationOutput::Fixed { method, hash, path: placeholder });
        return Ok(());
    }
    if is_true(attribute(env, structured, "__contentAddressed")) {
        return Err(message("experimental Nix feature 'ca-derivations' is disabled; enable it with '--extra-experimental-features ca-derivations'"));
    }
    if is_true(attribute(env, structured, "__impure")) {
        return Err(message("experimental Nix feature 'impure-derivations' is disabled; enable it with '--extra-experimental-features impure-derivations'"));
    }
    for output in output_names {
        outputs.insert(output.clone(), DerivationOutput::Deferred);
    }
    Ok(())
}

/// Reads a `.drv` from the store (derivations computed in this evaluation are
/// never read back: their hashes and output names are remembered).
pub(crate) fn read_derivation(io: &StoreEvalIO, path: &StorePath) -> Result<Derivation, IoError> {
    let store_dir = io.store_dir();
    let printed = store_dir.print_path(path);
    let real = io
        .store()
        .real_path(path)
        .ok_or_else(|| message(format!("cannot read derivation '{printed}' from store '{}'", io.store().uri())))?;
    let bytes = std::fs::read(&real).map_err(|e| message(format!("cannot read derivation '{printed}': {e}")))?;
    Derivation::parse(store_dir, &bytes).map_err(|e| message(format!("invalid derivation '{printed}': {e}")))
}
