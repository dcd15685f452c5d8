//! Why an `assert a == b;` failed, as current CppNix explains it
//! (`assertEqValues`): both sides are compared again, and the first
//! difference is reported ("string '"x"' is not equal to string '"y"'"), with
//! frames naming the attribute or list element it sits in.
//!
//! Only reached after the plain equality said "not equal", so it runs once,
//! on the failure path.

use crate::error::{ErrorKind, EvalError, Result, TraceFrame};
use crate::eval::Eval;
use crate::pos::Pos;
use crate::show_value::show_value;
use crate::value::Value;

#[cold]
fn unequal(msg: String) -> Box<EvalError> {
    EvalError::new(ErrorKind::Assert, msg, Pos::NONE)
}

fn with_frame(mut e: Box<EvalError>, pos: Pos, msg: String) -> Box<EvalError> {
    e.trace.push(TraceFrame::new(pos, msg));
    e
}

/// Fails with the first difference between `a` and `b` (forcing what it
/// compares); succeeds if they are equal after all. `pos` is where the
/// comparison frames point (none for `==`, which has no position in CppNix).
pub fn assert_eq_values(ev: &mut Eval, a: &Value, b: &Value, pos: Pos) -> Result<()> {
    let a = ev.force(a, pos)?;
    let b = ev.force(b, pos)?;
    let numeric = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_));
    if numeric(&a) && numeric(&b) {
        if ev.equal(&a, &b, pos)? {
            return Ok(());
        }
        return Err(unequal(format!(
            "{} with value '{}' is not equal to {} with value '{}'",
            a.show_type(),
            show_value(&a),
            b.show_type(),
            show_value(&b)
        )));
    }
    if std::mem::discriminant(&a) != std::mem::discriminant(&b) && !(is_function(&a) && is_function(&b)) {
        return Err(unequal(format!(
            "{} of value '{}' is not equal to {} of value '{}'",
            a.show_type(),
            show_value(&a),
            b.show_type(),
            show_value(&b)
        )));
    }
    match (&a, &b) {
        (Value::Bool(x), Value::Bool(y)) if x != y => {
            Err(unequal(format!("boolean '{}' is not equal to boolean '{}'", show_value(&a), show_value(&b))))
        }
        (Value::String(x), Value::String(y)) if x.as_bytes() != y.as_bytes() => {
            Err(unequal(format!("string '{}' is not equal to string '{}'", show_value(&a), show_value(&b))))
        }
        (Value::Path(x), Value::Path(y)) if x.as_bytes() != y.as_bytes() => {
            Err(unequal(format!("path '{}' is not equal to path '{}'", show_value(&a), show_value(&b))))
        }
        (Value::List(x), Value::List(y)) => {
            if x.len() != y.len() {
                return Err(unequal(format!(
                    "list of size '{}' is not equal to list of size '{}', left hand side is '{}', right hand side is '{}'",
                    x.len(),
                    y.len(),
                    show_value(&a),
                    show_value(&b)
                )));
            }
            for (n, (xi, yi)) in x.iter().zip(y.iter()).enumerate() {
                assert_eq_values(ev, xi, yi, pos).map_err(|e| with_frame(e, pos, format!("while comparing list element {n}")))?;
            }
            Ok(())
        }
        (Value::Attrs(x), Value::Attrs(y)) => {
            if ev.is_derivation(x)? && ev.is_derivation(y)? {
                if let (Some(i), Some(j)) = (x.get(ev.s.out_path), y.get(ev.s.out_path)) {
                    let (i, j) = (i.clone(), j.clone());
                    return assert_eq_values(ev, &i, &j, pos).map_err(|e| {
                        with_frame(e, pos, "while comparing a derivation by its 'outPath' attribute".to_string())
                    });
                }
            }
            if x.len() != y.len() {
                return Err(unequal(format!(
                    "attribute names of attribute set '{}' differs from attribute set '{}'",
                    show_value(&a),
                    show_value(&b)
                )));
            }
            let xs = x.sorted_by_name();
            let ys = y.sorted_by_name();
            for (i, j) in xs.iter().zip(ys.iter()) {
                if i.name != j.name {
                    if y.get(i.name).is_none() {
                        return Err(unequal(format!(
                            "attribute name '{}' is contained in '{}', but not in '{}'",
                            i.name,
                            show_value(&a),
                            show_value(&b)
                        )));
                    }
                    return Err(unequal(format!(
                        "attribute name '{}' is missing in '{}', but is contained in '{}'",
                        j.name,
                        show_value(&a),
                        show_value(&b)
                    )));
                }
                let (iv, jv) = (i.value.clone(), j.value.clone());
                if let Err(mut e) = assert_eq_values(ev, &iv, &jv, pos) {
                    if !j.pos.is_none() {
                        e.trace.push(TraceFrame::new(j.pos, "where right hand side is".to_string()));
                    }
                    if !i.pos.is_none() {
                        e.trace.push(TraceFrame::new(i.pos, "where left hand side is".to_string()));
                    }
                    return Err(with_frame(e, pos, format!("while comparing attribute '{}'", i.name)));
                }
            }
            Ok(())
        }
        (a, b) if is_function(a) && is_function(b) => Err(unequal(
            "distinct functions and immediate comparisons of identical functions compare as unequal".to_string(),
        )),
        _ => Ok(()),
    }
}

fn is_function(v: &Value) -> bool {
    matches!(v, Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_))
}
