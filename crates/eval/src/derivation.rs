//! `derivation` and `derivationStrict`.
//!
//! The evaluator does the language part (forcing and coercing every attribute,
//! `__ignoreNulls`, `__structuredAttrs`, `outputs`); writing the `.drv` and
//! computing output paths is the store's job, behind
//! [`crate::io::EvalIO::derivation_strict`].

use crate::error::{ErrorContext, ErrorKind, EvalError, Result, TraceFrame, add_context};
use crate::eval::{AddTrace, Coerce, Eval, eval_error, io_error};
use crate::io::DerivationRequest;
use crate::pos::Pos;
use crate::symbol::Sym;
use crate::value::*;

/// The file name CppNix 2.8 gives its built-in `derivation` code, in
/// positions (`unsafeGetAttrPos`, `--xml`) and error traces.
pub const DERIVATION_NIX_PATH: &str = "//builtin/derivation.nix";

/// `derivation`, in Nix: calls `derivationStrict` and returns the first output's
/// attribute set, each output carrying `outPath`, `drvPath`, `type` and
/// `outputName`, plus the original attributes, `all` and `drvAttrs`. Our own
/// text, laid out so that its positions are CppNix 2.8's.
pub const DERIVATION_NIX: &str = r#"# The built-in `derivation`: calls `derivationStrict` and returns the first
# output's attribute set. The layout is deliberate: every attribute it defines
# sits where CppNix 2.8's //builtin/derivation.nix reports it (--xml locations,
# unsafeGetAttrPos), so the line and column numbers agree.
drvAttrs@{ outputs ? [ "out" ], ... }:
let
  strict = derivationStrict drvAttrs;
  outputPairs = map outputPair outputs;
  shared = drvAttrs // builtins.listToAttrs outputPairs
    // {
      # one attribute per output, then these two
      all = map (pair: pair.value) outputPairs;
     inherit drvAttrs;
    };
  outputPair = outputName:
    {
      name = outputName;
      value = shared // {
        outPath = builtins.getAttr outputName strict;
        drvPath = strict.drvPath;
        type = "derivation";
       inherit outputName;
      };
    };
in

  # the first output
   (builtins.head outputPairs).value
"#;

pub fn prim_derivation_strict(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let attrs = e.force_attrs(&a[0], p).context("while evaluating the argument passed to builtins.derivationStrict")?;
    // The name first, for the frames of every later error.
    let Some(name_attr) = attrs.find(e.s.name) else {
        let mut err = EvalError::new(ErrorKind::Type, "attribute 'name' missing", Pos::NONE);
        err.trace.push(TraceFrame::new(Pos::NONE, "in the attrset passed as argument to builtins.derivationStrict"));
        return Err(err);
    };
    let (name_v, name_pos) = (name_attr.value.clone(), name_attr.pos);
    let name = e
        .force_string_no_ctx(&name_v, p)
        .context("while evaluating the `name` attribute passed to builtins.derivationStrict")
        .trace(name_pos, || "while evaluating the derivation attribute 'name'".to_string())?
        .to_str_lossy()
        .into_owned();
    // CppNix shows where the name is as text, not as a code excerpt.
    derivation_strict_named(e, &attrs, &name, p).trace(Pos::NONE, || {
        let at = name_pos.resolve().map(|loc| loc.to_string()).unwrap_or_else(|| "«none»:0".to_string());
        format!("while evaluating derivation '{name}'\n  whose name attribute is located at {at}")
    })
}

fn derivation_strict_named(e: &mut Eval, attrs: &Attrs, name: &str, p: Pos) -> Result<Value> {
    if let Err(why) = check_store_path_name(name) {
        return Err(eval_error(format!("invalid derivation name: {why}. Please pass a different 'name'."), Pos::NONE));
    }
    let name = name.to_string();
    let structured = match attrs.get(e.s.structured_attrs).cloned() {
        Some(v) => e
            .force_bool(&v, p)
            .context("while evaluating the `__structuredAttrs` attribute passed to builtins.derivationStrict")?,
        None => false,
    };
    let ignore_nulls = match attrs.get(e.s.ignore_nulls).cloned() {
        Some(v) => {
            e.force_bool(&v, p).context("while evaluating the `__ignoreNulls` attribute passed to builtins.derivationStrict")?
        }
        None => false,
    };
    let mut d = DrvBuilder {
        request: DerivationRequest { name: name.clone(), ..Default::default() },
        context: Context::new(),
        json_fields: Vec::new(),
        outputs: vec!["out".to_string()],
        flag_attrs: [(Sym::from_str("__contentAddressed"), "ca-derivations"), (Sym::from_str("__impure"), "impure-derivations")],
        output_hash_mode: Sym::from_str("outputHashMode"),
    };
    for attr in attrs.sorted_by_name() {
        if attr.name == e.s.ignore_nulls {
            continue;
        }
        // Any failure names the attribute at its position; the checks inside
        // add no frame of their own (CppNix's empty `context_below`).
        d.add_attr(e, attr, structured, ignore_nulls, p).trace(attr.pos, || {
            format!("while evaluating attribute '{}' of derivation '{name}'", attr.name)
        })?;
    }
    let DrvBuilder { mut request, context, json_fields, outputs, .. } = d;
    if request.builder.is_empty() {
        return Err(eval_error("required attribute 'builder' missing", p));
    }
    if request.system.is_empty() {
        return Err(eval_error("required attribute 'system' missing", p));
    }
    if structured {
        let mut json = b"{".to_vec();
        for (i, (k, v)) in json_fields.iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            crate::print::json_string(k.as_bytes(), &mut json);
            json.push(b':');
            json.extend_from_slice(v);
        }
        json.push(b'}');
        request.structured_attrs = Some(json);
    }
    request.outputs = outputs;
    // Store paths are ASCII: the lossy conversion is only for the odd element
    // `appendContext` made up.
    request.context = context
        .iter()
        .map(|c| match std::str::from_utf8(c) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(c).into_owned(),
        })
        .collect();
    let io = e.io.clone();
    let result = io.derivation_strict(request).map_err(|err| io_error(err, p))?;
    let mut out = AttrsBuilder::new();
    let mut drv_ctx = Context::new();
    drv_ctx.insert(format!("={}", result.drv_path).into_bytes());
    out.insert(e.s.drv_path, Value::string_ctx(result.drv_path.clone().into_bytes(), drv_ctx), Pos::NONE);
    for (output, path) in result.outputs {
        let mut ctx = Context::new();
        ctx.insert(format!("!{}!{}", output, result.drv_path).into_bytes());
        out.insert(Sym::from_str(&output), Value::string_ctx(path.into_bytes(), ctx), Pos::NONE);
    }
    Ok(Value::attrs(out))
}

/// What `derivationStrict` gathers from the attributes, one at a time.
struct DrvBuilder {
    request: DerivationRequest,
    context: Context,
    json_fields: Vec<(String, Vec<u8>)>,
    outputs: Vec<String>,
    /// `__contentAddressed` and `__impure`: flags, never passed to the
    /// builder, each needing its experimental feature when true.
    flag_attrs: [(Sym, &'static str); 2],
    output_hash_mode: Sym,
}

impl DrvBuilder {
    fn add_attr(&mut self, e: &mut Eval, attr: &Attr, structured: bool, ignore_nulls: bool, p: Pos) -> Result<()> {
        let key = attr.name.as_str().into_owned();
        let v = e.force(&attr.value, p)?;
        if ignore_nulls && matches!(v, Value::Null) {
            return Ok(());
        }
        if let Some(&(_, feature)) = self.flag_attrs.iter().find(|(name, _)| *name == attr.name) {
            if !e.force_bool(&v, p).map_err(silent)? {
                return Ok(());
            }
            if !e.settings.experimental_features.iter().any(|f| f == feature) {
                return Err(eval_error(
                    format!("experimental Nix feature '{feature}' is disabled; add '--extra-experimental-features {feature}' to enable it"),
                    Pos::NONE,
                ));
            }
            // With the feature on, the store side decides (it refuses both kinds for now).
            self.request.env.push((key, b"1".to_vec()));
            return Ok(());
        }
        if attr.name == e.s.args {
            let list = e.force_list(&v, p).map_err(silent)?;
            for item in list.iter() {
                // Straight into the argument's bytes and the derivation's context.
                let mut text = Vec::new();
                e.coerce_to_string_into(item, p, Coerce { more: true, copy_to_store: true }, &mut text, &mut self.context)
                    .context("while evaluating an element of the argument list")?;
                self.request.args.push(text);
            }
            return Ok(());
        }
        if structured {
            if attr.name == e.s.structured_attrs {
                return Ok(());
            }
            let mut out = Vec::new();
            crate::print::to_json(e, &v, p, &mut out, &mut self.context)?;
            self.json_fields.push((key, out));
            if attr.name == e.s.outputs {
                let list = e.force_list(&v, p).map_err(silent)?;
                let mut names = Vec::with_capacity(list.len());
                for o in list.iter() {
                    names.push(e.force_string_no_ctx(o, p).map_err(silent)?.to_str_lossy().into_owned());
                }
                self.set_outputs(names)?;
            } else if attr.name == e.s.builder {
                let s = e.force_string(&v, p).map_err(silent)?;
                self.request.builder = s.as_bytes().to_vec();
            } else if attr.name == e.s.system {
                let s = e.force_string_no_ctx(&v, p).map_err(silent)?;
                self.request.system = s.as_bytes().to_vec();
            } else if attr.name == self.output_hash_mode {
                let s = e.force_string_no_ctx(&v, p).map_err(silent)?;
                check_output_hash_mode(e, s.as_bytes())?;
            }
            return Ok(());
        }
        let mut text = Vec::new();
        e.coerce_to_string_into(&v, p, Coerce { more: true, copy_to_store: true }, &mut text, &mut self.context)
            .map_err(silent)?;
        if attr.name == e.s.builder {
            self.request.builder = text.clone();
        } else if attr.name == e.s.system {
            self.request.system = text.clone();
        } else if attr.name == self.output_hash_mode {
            check_output_hash_mode(e, &text)?;
        } else if attr.name == e.s.outputs {
            // CppNix's tokenizeString: only space, tab, newline and return
            // separate names (not the other Unicode or ASCII whitespace).
            let names = text
                .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .filter(|o| !o.is_empty())
                .map(|o| String::from_utf8_lossy(o).into_owned())
                .collect();
            self.set_outputs(names)?;
        }
        self.request.env.push((key, text));
        Ok(())
    }

    /// Current CppNix's rules for `outputs`: no repeats, none named
    /// `drvPath` (the attribute the result already has), at least one.
    fn set_outputs(&mut self, names: Vec<String>) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for o in &names {
            if !seen.insert(o.as_str()) {
                return Err(eval_error(format!("duplicate derivation output '{o}'"), Pos::NONE));
            }
            if o == "drvPath" {
                return Err(eval_error("invalid derivation output name 'drvPath'", Pos::NONE));
            }
        }
        if names.is_empty() {
            return Err(eval_error("derivation cannot have an empty set of outputs", Pos::NONE));
        }
        self.outputs = names;
        Ok(())
    }
}

/// CppNix's `checkName` for store path names, in its words: not empty, at
/// most 211 bytes, not `.`/`..` (alone or as the first dash-separated
/// component), only `0-9a-zA-Z+-._?=`.
fn check_store_path_name(name: &str) -> std::result::Result<(), String> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err("name must not be empty".into());
    }
    if bytes.len() > 211 {
        return Err(format!("name '{name}' must be no longer than 211 characters"));
    }
    if bytes[0] == b'.' {
        match (bytes.get(1), bytes.get(2)) {
            (None, _) | (Some(b'.'), None) => return Err(format!("name '{name}' is not valid")),
            (Some(b'-'), _) => {
                return Err(format!("name '{name}' is not valid: first dash-separated component must not be '.'"));
            }
            (Some(b'.'), Some(b'-')) => {
                return Err(format!("name '{name}' is not valid: first dash-separated component must not be '..'"));
            }
            _ => {}
        }
    }
    match bytes.iter().find(|c| !(c.is_ascii_alphanumeric() || b"+-._?=".contains(c))) {
        Some(&c) => Err(format!("name '{name}' contains illegal character '{}'", String::from_utf8_lossy(&[c]))),
        None => Ok(()),
    }
}

/// Current CppNix's ingestion methods for `outputHashMode`: `flat`,
/// `recursive` (or `nar`), and `text` and `git`, which need their
/// experimental features.
fn check_output_hash_mode(e: &Eval, mode: &[u8]) -> Result<()> {
    let feature = match mode {
        b"flat" | b"recursive" | b"nar" => return Ok(()),
        b"text" => "dynamic-derivations",
        b"git" => "git-hashing",
        other => {
            return Err(eval_error(
                format!("invalid value '{}' for 'outputHashMode' attribute", String::from_utf8_lossy(other)),
                Pos::NONE,
            ));
        }
    };
    if e.settings.experimental_features.iter().any(|f| f == feature) {
        return Ok(());
    }
    Err(eval_error(
        format!("experimental Nix feature '{feature}' is disabled; add '--extra-experimental-features {feature}' to enable it"),
        Pos::NONE,
    ))
}

/// CppNix checks derivation attributes with an empty `errorCtx`: a frame
/// that is never shown, and that keeps later frames from being added.
#[cold]
fn silent(err: Box<EvalError>) -> Box<EvalError> {
    add_context(err, Pos::NONE, String::new)
}
