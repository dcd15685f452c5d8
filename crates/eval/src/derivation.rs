//! `derivation` and `derivationStrict`.
//!
//! The evaluator does the language part (forcing and coercing every attribute,
//! `__ignoreNulls`, `__structuredAttrs`, `outputs`); writing the `.drv` and
//! computing output paths is the store's job, behind
//! [`crate::io::EvalIO::derivation_strict`].

use crate::error::Result;
use crate::eval::{Coerce, Eval, eval_error, io_error};
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
    let attrs = e.force_attrs(&a[0], p)?;
    let Some(name_v) = attrs.get(e.s.name).cloned() else {
        return Err(eval_error("required attribute 'name' missing", p));
    };
    let name = e.force_string_no_ctx(&name_v, p)?.to_str_lossy().into_owned();
    let ignore_nulls = match attrs.get(e.s.ignore_nulls).cloned() {
        Some(v) => e.force_bool(&v, p)?,
        None => false,
    };
    let structured = match attrs.get(e.s.structured_attrs).cloned() {
        Some(v) => e.force_bool(&v, p)?,
        None => false,
    };
    let mut request = DerivationRequest { name: name.clone(), ..Default::default() };
    let mut context = Context::new();
    let mut json_fields: Vec<(String, Vec<u8>)> = Vec::new();
    let mut outputs: Vec<String> = Vec::new();
    for attr in attrs.sorted_by_name() {
        let key = attr.name.to_string();
        if attr.name == e.s.ignore_nulls {
            continue;
        }
        let what = || format!("while evaluating the attribute '{key}' of the derivation '{name}'");
        let v = crate::eval::AddTrace::trace(e.force(&attr.value, p), attr.pos, what)?;
        if ignore_nulls && matches!(v, Value::Null) {
            continue;
        }
        if attr.name == e.s.args {
            let list = e.force_list(&v, p)?;
            for item in list.iter() {
                let s = e.coerce_to_string(item, p, Coerce { more: true, copy_to_store: true })?;
                context.extend(s.context().into_iter().flatten().cloned());
                request.args.push(s.as_bytes().to_vec());
            }
            continue;
        }
        if structured && attr.name != e.s.structured_attrs {
            let mut out = Vec::new();
            crate::print::to_json(e, &v, p, &mut out, &mut context)?;
            json_fields.push((key.clone(), out));
            if attr.name == e.s.outputs {
                let list = e.force_list(&v, p)?;
                for o in list.iter() {
                    outputs.push(e.force_string_no_ctx(o, p)?.to_str_lossy().into_owned());
                }
            }
            if attr.name == e.s.builder || attr.name == e.s.system {
                let s = e.coerce_to_string(&v, p, Coerce { more: true, copy_to_store: true })?;
                if attr.name == e.s.builder {
                    request.builder = s.as_bytes().to_vec();
                } else {
                    request.system = s.as_bytes().to_vec();
                }
            }
            continue;
        }
        let s = e.coerce_to_string(&v, p, Coerce { more: true, copy_to_store: true })?;
        context.extend(s.context().into_iter().flatten().cloned());
        if attr.name == e.s.outputs {
            // CppNix's tokenizeString: only space, tab, newline and return
            // separate names (not the other Unicode or ASCII whitespace).
            for o in s.as_bytes().split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).filter(|o| !o.is_empty()) {
                outputs.push(String::from_utf8_lossy(o).into_owned());
            }
        }
        let text = s.as_bytes().to_vec();
        if attr.name == e.s.builder {
            request.builder = text.clone();
        }
        if attr.name == e.s.system {
            request.system = text.clone();
        }
        request.env.push((key, text));
    }
    if request.builder.is_empty() {
        return Err(eval_error("required attribute 'builder' missing", p));
    }
    if request.system.is_empty() {
        return Err(eval_error("required attribute 'system' missing", p));
    }
    if outputs.is_empty() {
        outputs.push("out".to_string());
    }
    let mut seen = std::collections::HashSet::new();
    for o in &outputs {
        if o == "drv" {
            return Err(eval_error(format!("invalid derivation output name 'drv' in derivation '{name}'"), p));
        }
        if !seen.insert(o.clone()) {
            return Err(eval_error(format!("duplicate derivation output '{o}', in derivation '{name}'"), p));
        }
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
    request.context = context.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let io = e.io.clone();
    let result = io.derivation_strict(request).map_err(|err| io_error(err, p))?;
    let mut out = Attrs::new();
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
