//! Making a user environment as CppNix 2.8's `createUserEnv` does: build the
//! elements, write `env-manifest.nix` (the elements printed as a Nix list,
//! byte for byte as CppNix prints it), evaluate the `<nix/buildenv.nix>`
//! expression on it (`builder = "builtin:buildenv"`, so the `.drv` and its
//! output path are CppNix's), build that, and, under the profile lock and only
//! if nobody changed the profile meanwhile (the optimistic lock token), make
//! it a new generation and switch the profile link with one rename.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use nivis_build::DerivedPath;
use nivis_eval::value::AttrsBuilder;
use nivis_eval::{Eval, Pos, Sym, Value};
use nivis_formats::StorePath;

use super::drv_info::DrvInfo;
use super::{EvalResultExt, ExitStatus, Globals};

/// CppNix 2.8's `corepkgs/buildenv.nix`; only the values it produces matter
/// for the derivation, and they are the same.
const BUILDENV_NIX: &str = r#"{ derivations, manifest }:

derivation {
  name = "user-environment";
  system = "builtin";
  builder = "builtin:buildenv";

  inherit manifest;

  # !!! grmbl, need structured data for passing this in a clean way.
  derivations =
    map (d:
      [ (d.meta.active or "true")
        (d.meta.priority or 5)
        (builtins.length d.outputs)
      ] ++ map (output: builtins.getAttr output d) d.outputs)
      derivations;

  # Building user environments remotely just causes huge amounts of
  # network traffic, so don't do that.
  preferLocalBuild = true;

  # Also don't bother substituting.
  allowSubstitutes = false;
}
"#;

/// The optimistic lock: what the profile link says now (empty if missing).
pub fn lock_token(profile: &Path) -> String {
    std::fs::read_link(profile).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A value as CppNix 2.8's `Value::print` writes it into manifests: sets with
/// their names in byte order and unquoted, strings escaped, floats as `%g`.
pub fn print_manifest_value(ev: &mut Eval, v: &Value, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let v = ev.force(v, Pos::NONE).ev()?;
    match &v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Float(f) => {
            out.extend_from_slice(nivis_eval::support::float_format::format_float_for_print(*f).as_bytes())
        }
        Value::String(s) => nivis_eval::print::escape_string(s.as_bytes(), out),
        Value::Path(p) => out.extend_from_slice(p.as_bytes()),
        Value::Attrs(attrs) => {
            out.extend_from_slice(b"{ ");
            let entries: Vec<(&'static [u8], Value)> =
                attrs.sorted_by_name().into_iter().map(|a| (a.name.as_bytes(), a.value.clone())).collect();
            for (name, value) in entries {
                out.extend_from_slice(name);
                out.extend_from_slice(b" = ");
                print_manifest_value(ev, &value, out)?;
                out.extend_from_slice(b"; ");
            }
            out.push(b'}');
        }
        Value::List(items) => {
            out.extend_from_slice(b"[ ");
            for item in items.iter() {
                print_manifest_value(ev, item, out)?;
                out.push(b' ');
            }
            out.push(b']');
        }
        Value::Lambda(_) => out.extend_from_slice(b"<LAMBDA>"),
        Value::PrimOp(_) => out.extend_from_slice(b"<PRIMOP>"),
        Value::PrimOpApp(_) => out.extend_from_slice(b"<PRIMOP-APP>"),
        Value::Thunk(_) => out.extend_from_slice(b"<CODE>"),
    }
    Ok(())
}

fn string(s: &str) -> Value {
    Value::string(s.as_bytes().to_vec())
}

/// Builds the derivations of `elems` (all outputs of those that have a
/// `.drv`), as `buildPaths` does before the environment is made.
pub fn build_elements(g: &mut Globals, elems: &[DrvInfo]) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for elem in elems {
        if let Some(drv) = elem.drv_path(&mut g.ev)? {
            let drv_path = g.io.store().parse_store_path(&drv)?;
            targets.push(DerivedPath { drv_path, outputs: None });
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let store = g.io.store();
    let settings = g.build.settings(true)?;
    let result = nivis_build::realise(store, &targets, &settings, None)?;
    if !result.failures.is_empty() {
        return Err(ExitStatus(crate::realise::report_failures(&result)).into());
    }
    Ok(())
}

/// `printMissing` for elements, then (unless `--dry-run`) their builds; the
/// same order CppNix prints in.
pub fn print_missing_and_build(g: &mut Globals, elems: &[DrvInfo]) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    for elem in elems {
        if let Some(drv) = elem.drv_path(&mut g.ev)? {
            let drv_path = g.io.store().parse_store_path(&drv)?;
            targets.push(DerivedPath { drv_path, outputs: None });
        }
    }
    let settings = g.build.settings(true)?;
    let substituters = g.build.substituters()?;
    match crate::realise::realise(g.io.store(), &targets, &settings, &substituters, g.dry_run)? {
        Ok(_) => Ok(()),
        Err(status) => Err(ExitStatus(status).into()),
    }
}

/// CppNix's `createUserEnv`. Returns false when the profile changed under us
/// (the caller starts over).
pub fn create_user_env(g: &mut Globals, elems: &[DrvInfo], profile: &Path, token: &str) -> anyhow::Result<bool> {
    build_elements(g, elems)?;
    let keep_derivations = g.keep_derivations;
    let store_dir = g.io.store().store_dir().as_str().to_string();
    let mut references: BTreeSet<String> = BTreeSet::new();
    let mut manifest_items = Vec::new();
    for elem in elems {
        let drv_path = if keep_derivations { elem.drv_path(&mut g.ev)? } else { None };
        let outputs = elem.outputs(&mut g.ev, true)?;
        let meta_names = elem.meta_names(&mut g.ev)?;
        let mut attrs = AttrsBuilder::new();
        attrs.insert(g.ev.s.type_, string("derivation"), Pos::NONE);
        attrs.insert(g.ev.s.name, string(&elem.name), Pos::NONE);
        let system = elem.system(&mut g.ev)?;
        if !system.is_empty() {
            attrs.insert(g.ev.s.system, string(&system), Pos::NONE);
        }
        let out_path = elem.out_path(&mut g.ev)?;
        attrs.insert(g.ev.s.out_path, string(&out_path), Pos::NONE);
        if let Some(drv) = &drv_path {
            attrs.insert(g.ev.s.drv_path, string(drv), Pos::NONE);
        }
        let mut output_names = Vec::new();
        for (name, path) in &outputs {
            output_names.push(string(name));
            let mut output = AttrsBuilder::new();
            output.insert(g.ev.s.out_path, string(path), Pos::NONE);
            attrs.insert(Sym::from_str(name), Value::attrs(output), Pos::NONE);
            // Store paths given directly must exist (CppNix's ensurePath).
            let store_path = g.io.store().parse_store_path(path)?;
            if let Some(local) = g.io.store().as_local() {
                local.add_temp_root(&store_path)?;
            }
            if !g.io.store().is_valid_path(&store_path)? {
                bail!("path '{path}' does not exist and cannot be created");
            }
            references.insert(path.clone());
        }
        attrs.insert(g.ev.s.outputs, Value::list(output_names), Pos::NONE);
        let mut meta = AttrsBuilder::new();
        for name in meta_names {
            if let Some(v) = elem.meta(&mut g.ev, &name)? {
                meta.insert(Sym::from_str(&name), v, Pos::NONE);
            }
        }
        attrs.insert(Sym::from_str("meta"), Value::attrs(meta), Pos::NONE);
        manifest_items.push(Value::attrs(attrs));
        if let Some(drv) = drv_path {
            references.insert(drv);
        }
    }
    let manifest = Value::list(manifest_items);
    let mut text = Vec::new();
    print_manifest_value(&mut g.ev, &manifest, &mut text)?;
    let references: Vec<StorePath> =
        references.iter().map(|p| g.io.store().parse_store_path(p)).collect::<Result<_, _>>()?;
    let manifest_path =
        g.io.store()
            .add_text_to_store("env-manifest.nix", &text, &references.iter().cloned().collect(), false)
            .context("writing the manifest of the user environment")?;
    // The manifest must outlive a concurrent collection until it is part of a generation.
    if let Some(local) = g.io.store().as_local() {
        local.add_temp_root(&manifest_path)?;
    }
    let manifest_printed = format!("{store_dir}/{}", manifest_path.base_name());

    let builder = {
        let e = g.ev.parse_string(BUILDENV_NIX, Path::new("/")).ev()?;
        g.ev.eval_expr(e).ev()?
    };
    let mut args = AttrsBuilder::new();
    let context: nivis_eval::value::Context = [nivis_eval::value::ContextElement::from(manifest_printed.as_bytes())].into();
    args.insert(Sym::from_str("manifest"), Value::string_ctx(manifest_printed.as_bytes().to_vec(), context), Pos::NONE);
    args.insert(Sym::from_str("derivations"), manifest, Pos::NONE);
    let top = g.ev.call(&builder, Value::attrs(args), Pos::NONE).ev()?;
    let top = g.ev.force_attrs(&top, Pos::NONE).ev()?;
    let get = |g: &mut Globals, name: Sym| -> anyhow::Result<String> {
        let v = top.get(name).cloned().ok_or_else(|| anyhow!("the user environment lacks an attribute"))?;
        Ok(g.ev.force_string(&v, Pos::NONE).ev()?.to_str_lossy().into_owned())
    };
    let drv_path = get(g, g.ev.s.drv_path)?;
    let out_path = get(g, g.ev.s.out_path)?;
    let store = g.io.store();
    let drv_path = store.parse_store_path(&drv_path)?;
    let out_path = store.parse_store_path(&out_path)?;

    let settings = g.build.settings(true)?;
    let result = nivis_build::realise(store, &[DerivedPath { drv_path, outputs: None }], &settings, None)?;
    if !result.failures.is_empty() {
        return Err(ExitStatus(crate::realise::report_failures(&result)).into());
    }

    let local = store.as_local().ok_or_else(|| anyhow!("profiles need a local store"))?;
    let _lock = nivis_profile::lock_profile(profile, || {})?;
    if lock_token(profile) != token {
        eprintln!("profile '{}' changed while we were busy; restarting", profile.display());
        return Ok(false);
    }
    let generation = nivis_profile::create_generation(local, profile, &out_path)?;
    nivis_profile::switch_link(profile, &generation)?;
    Ok(true)
}
