//! `nix-env --query` (`-q`): installed or available packages as CppNix 2.8
//! prints them, a table of columns (status, attribute path, name, version
//! comparison, system, `.drv`, outputs, description) or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::bail;
use nivis_eval::{Eval, Pos, Value};

use super::drv_info::{DrvInfo, filter_by_selector, load_derivations, query_installed};
use nivis_store::Store;

use super::{EvalFailure, EvalResultExt, Globals};

#[derive(PartialEq, Eq)]
enum Source {
    Installed,
    Available,
}

/// CppNix's `printTable`: columns padded to their widest cell plus two
/// spaces, the last one not padded.
fn print_table(table: &[Vec<String>], out: &mut impl Write) -> std::io::Result<()> {
    let columns = table.first().map_or(0, Vec::len);
    let mut widths = vec![0usize; columns];
    for row in table {
        for (column, cell) in row.iter().enumerate() {
            widths[column] = widths[column].max(cell.len());
        }
    }
    for row in table {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let cell = cell.replace('\n', " ");
            line.push_str(&cell);
            if column + 1 < columns {
                line.push_str(&" ".repeat(widths[column] - cell.len() + 2));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// JSON as CppNix 2.8's `JSONObject` writes it with indentation: members in
/// insertion order, two spaces per level, `{}`/`[]` when empty.
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn str(s: &str) -> Json {
        Json::Str(s.as_bytes().to_vec())
    }

    fn write(&self, out: &mut Vec<u8>, depth: usize) {
        let indent = |out: &mut Vec<u8>, depth: usize| out.extend(std::iter::repeat_n(b' ', depth * 2));
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Json::Float(f) => {
                out.extend_from_slice(nivis_eval::support::float_format::format_float_for_json(*f).as_bytes())
            }
            Json::Str(s) => nivis_eval::print::json_string(s, out),
            Json::List(items) if items.is_empty() => out.extend_from_slice(b"[]"),
            Json::Object(members) if members.is_empty() => out.extend_from_slice(b"{}"),
            Json::List(items) => {
                out.extend_from_slice(b"[\n");
                for (i, item) in items.iter().enumerate() {
                    indent(out, depth + 1);
                    item.write(out, depth + 1);
                    out.extend_from_slice(if i + 1 < items.len() { b",\n" } else { b"\n" });
                }
                indent(out, depth);
                out.push(b']');
            }
            Json::Object(members) => {
                out.extend_from_slice(b"{\n");
                for (i, (name, value)) in members.iter().enumerate() {
                    indent(out, depth + 1);
                    nivis_eval::print::json_string(name.as_bytes(), out);
                    out.extend_from_slice(b": ");
                    value.write(out, depth + 1);
                    out.extend_from_slice(if i + 1 < members.len() { b",\n" } else { b"\n" });
                }
                indent(out, depth);
                out.push(b'}');
            }
        }
    }
}

/// A meta value as JSON (`printValueAsJSON`, strict).
fn to_json(ev: &mut Eval, v: &Value) -> anyhow::Result<Json> {
    let v = ev.force(v, Pos::NONE).ev()?;
    Ok(match &v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(n) => Json::Int(*n),
        Value::Float(f) => Json::Float(*f),
        Value::String(s) => Json::Str(s.as_bytes().to_vec()),
        Value::Path(p) => Json::Str(p.as_bytes().to_vec()),
        Value::List(items) => {
            let mut list = Vec::new();
            for item in items.iter() {
                list.push(to_json(ev, item)?);
            }
            Json::List(list)
        }
        Value::Attrs(attrs) => {
            let entries: Vec<(String, Value)> =
                attrs.sorted_by_name().into_iter().map(|a| (a.name.as_str().into_owned(), a.value.clone())).collect();
            let mut members = Vec::new();
            for (name, value) in entries {
                members.push((name, to_json(ev, &value)?));
            }
            Json::Object(members)
        }
        other => bail!("cannot convert {} to JSON", other.show_type()),
    })
}

/// CppNix's `querySubstitutablePaths`: the paths some configured binary
/// cache has, asking only caches that want mass queries (`WantMassQuery: 1`
/// in `nix-cache-info`, or `?want-mass-query=true`) and share our store
/// directory. A cache that cannot be opened or answer is passed over.
pub(super) fn query_substitutable_paths(
    g: &Globals,
    asked: &nivis_formats::StorePathSet,
) -> anyhow::Result<nivis_formats::StorePathSet> {
    let mut found = nivis_formats::StorePathSet::new();
    if asked.is_empty() {
        return Ok(found);
    }
    let mut config = nivis_config::Config::load()?;
    for (name, value) in &g.build.options {
        config.set(name, value);
    }
    if config.is_set("substitute") && !config.get_bool("substitute").unwrap_or(true) {
        return Ok(found);
    }
    let settings = nivis_store::StoreSettings::from_env();
    let store = g.io.store();
    for uri in config.get_list("substituters") {
        if !nivis_substitute::is_binary_cache_uri(&uri) {
            continue;
        }
        let Ok(cache) = nivis_substitute::BinaryCacheStore::open(&uri, &settings) else { continue };
        if !cache.want_mass_query() || cache.store_dir() != store.store_dir() {
            continue;
        }
        for path in asked {
            if !found.contains(path) && matches!(cache.query_path_info(path), Ok(Some(_))) {
                found.insert(path.clone());
            }
        }
    }
    Ok(found)
}

/// ` name="value"`, escaped as CppNix's XML writer escapes.
fn xml_attribute(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for &c in value {
        match c {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// One `<meta>` element of `--xml --meta`, as CppNix 2.8 writes it: lists
/// keep only their strings, sets their string attributes (named in `type`).
fn xml_meta(ev: &mut Eval, out: &mut Vec<u8>, name: &str, value: &Value) -> anyhow::Result<()> {
    let simple = |out: &mut Vec<u8>, kind: &str, text: &[u8]| {
        out.extend_from_slice(b"    <meta");
        xml_attribute(out, "name", name.as_bytes());
        xml_attribute(out, "type", kind.as_bytes());
        xml_attribute(out, "value", text);
        out.extend_from_slice(b" />\n");
    };
    let strings = |ev: &mut Eval, out: &mut Vec<u8>, items: Vec<(Option<String>, Value)>| -> anyhow::Result<()> {
        out.extend_from_slice(b"    <meta");
        xml_attribute(out, "name", name.as_bytes());
        xml_attribute(out, "type", b"strings");
        out.extend_from_slice(b">\n");
        for (key, item) in items {
            let Value::String(s) = ev.force(&item, Pos::NONE).ev()? else { continue };
            out.extend_from_slice(b"      <string");
            if let Some(key) = key {
                xml_attribute(out, "type", key.as_bytes());
            }
            xml_attribute(out, "value", s.as_bytes());
            out.extend_from_slice(b" />\n");
        }
        out.extend_from_slice(b"    </meta>\n");
        Ok(())
    };
    match value {
        Value::String(s) => simple(out, "string", s.as_bytes()),
        Value::Int(n) => simple(out, "int", n.to_string().as_bytes()),
        Value::Float(f) => {
            simple(out, "float", nivis_eval::support::float_format::format_float_for_print(*f).as_bytes())
        }
        Value::Bool(b) => simple(out, "bool", if *b { b"true" } else { b"false" }),
        Value::List(items) => strings(ev, out, items.iter().map(|v| (None, v.clone())).collect())?,
        // In the set's own order (symbol creation order), as CppNix iterates.
        Value::Attrs(attrs) => strings(
            ev,
            out,
            attrs.iter().map(|a| (Some(a.name.as_str().into_owned()), a.value.clone())).collect(),
        )?,
        _ => {}
    }
    Ok(())
}

/// CppNix's `compareVersionAgainstSet`: `<` when a newer version exists
/// in `others`, `=` the same, `>` only older ones, `-` none; and that version.
fn compare_version_against_set(elem: &DrvInfo, others: &[DrvInfo]) -> (char, String) {
    use nivis_eval::support::versions::compare_versions;
    use std::cmp::Ordering;
    let (pname, version) = (elem.pname(), elem.version());
    let mut diff = '-';
    let mut found = "?".to_string();
    for other in others {
        if other.pname() != pname {
            continue;
        }
        let other_version = other.version();
        match compare_versions(version.as_bytes(), other_version.as_bytes()) {
            Ordering::Less => {
                diff = '<';
                found = other_version;
            }
            Ordering::Equal if diff != '<' => {
                diff = '=';
                found = other_version;
            }
            Ordering::Greater if diff != '<' && diff != '=' => {
                diff = '>';
                if found.is_empty() || compare_versions(found.as_bytes(), other_version.as_bytes()) == Ordering::Less {
                    found = other_version;
                }
            }
            _ => {}
        }
    }
    (diff, found)
}

/// Case-insensitive name order (CppNix compares `toupper` of each byte).
fn name_order(a: &DrvInfo, b: &DrvInfo) -> std::cmp::Ordering {
    let upper = |s: &str| s.bytes().map(|c| c.to_ascii_uppercase()).collect::<Vec<u8>>();
    upper(&a.name).cmp(&upper(&b.name))
}

pub fn op_query(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    let (mut print_status, mut print_name, mut print_attr_path, mut print_system) = (false, true, false, false);
    let (mut print_drv_path, mut print_out_path, mut print_description, mut print_meta) = (false, false, false, false);
    let (mut compare_versions, mut json, mut xml) = (false, false, false);
    let mut source = Source::Installed;
    let mut attr_path = String::new();
    let mut i = 0;
    while i < flags.len() {
        match flags[i].as_str() {
            "--status" | "-s" => print_status = true,
            "--no-name" => print_name = false,
            "--system" => print_system = true,
            "--description" => print_description = true,
            "--compare-versions" | "-c" => compare_versions = true,
            "--drv-path" => print_drv_path = true,
            "--out-path" => print_out_path = true,
            "--meta" => print_meta = true,
            "--installed" => source = Source::Installed,
            "--available" | "-a" => source = Source::Available,
            "--json" => json = true,
            "--xml" => xml = true,
            "--attr-path" | "-P" => print_attr_path = true,
            "--attr" | "-A" => {
                i += 1;
                attr_path = flags.get(i).cloned().unwrap_or_default();
            }
            flag => bail!(super::usage(format!("unknown flag '{flag}'"))),
        }
        i += 1;
    }
    if print_attr_path && source != Source::Available {
        bail!(super::usage("--attr-path(-P) only works with --available".to_string()));
    }
    let profile = g.profile.clone();
    let installed = if source == Source::Installed || compare_versions || print_status {
        query_installed(g, &profile)?
    } else {
        Vec::new()
    };
    let available = if source == Source::Available || compare_versions {
        let path = g.nix_expr_path.clone();
        load_derivations(g, &path, &attr_path)?
    } else {
        Vec::new()
    };
    let selected =
        filter_by_selector(g, if source == Source::Installed { &installed } else { &available }, args, false)?;
    let others = if source == Source::Installed { &available } else { &installed };
    let mut elems = selected;
    elems.sort_by(name_order);

    let mut installed_paths = BTreeSet::new();
    if print_status {
        for elem in &installed {
            installed_paths.insert(elem.out_path(&mut g.ev)?);
        }
    }
    let mut valid_paths = BTreeSet::new();
    if print_status || g.prebuilt_only {
        for elem in &mut elems {
            match elem.out_path(&mut g.ev) {
                Ok(out) => {
                    let path = g.io.store().parse_store_path(&out)?;
                    if g.io.store().is_valid_path(&path)? {
                        valid_paths.insert(out);
                    }
                }
                Err(_) => elem.failed = true,
            }
        }
    }

    // What the binary caches offer.
    let mut substitutable_paths = BTreeSet::new();
    if print_status || g.prebuilt_only {
        let mut asked = nivis_formats::StorePathSet::new();
        for elem in elems.iter().filter(|e| !e.failed) {
            let out = elem.out_path(&mut g.ev)?;
            if !valid_paths.contains(&out) {
                asked.insert(g.io.store().parse_store_path(&out)?);
            }
        }
        for path in query_substitutable_paths(g, &asked)? {
            substitutable_paths.insert(g.io.store().print_store_path(&path));
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let mut root = Vec::new();
        for elem in &elems {
            // CppNix opens the object first and, when the element's evaluation
            // fails an assertion (or throws), skips the rest, keeping what it has.
            let mut object = Vec::new();
            let filled = (|| -> anyhow::Result<()> {
                object.push(("name".to_string(), Json::str(&elem.name)));
                object.push(("pname".to_string(), Json::str(&elem.pname())));
                object.push(("version".to_string(), Json::str(&elem.version())));
                object.push(("system".to_string(), Json::str(&elem.system(&mut g.ev)?)));
                let output_name = match &elem.attrs {
                    Some(attrs) => match attrs.get(nivis_eval::Sym::from_str("outputName")).cloned() {
                        Some(v) => g.ev.force_string(&v, Pos::NONE).ev()?.to_str_lossy().into_owned(),
                        None => String::new(),
                    },
                    None => String::new(),
                };
                object.push(("outputName".to_string(), Json::str(&output_name)));
                // Every output is listed; its path only with --out-path.
                let mut outputs = Vec::new();
                if print_out_path {
                    for (name, path) in elem.outputs(&mut g.ev, false)? {
                        outputs.push((name, Json::str(&path)));
                    }
                } else {
                    for name in elem.output_names(&mut g.ev)? {
                        outputs.push((name, Json::Null));
                    }
                }
                object.push(("outputs".to_string(), Json::Object(outputs)));
                if print_drv_path && let Some(drv) = elem.drv_path(&mut g.ev)? {
                    object.push(("drvPath".to_string(), Json::str(&drv)));
                }
                if print_meta {
                    let mut meta = Vec::new();
                    for name in elem.meta_names(&mut g.ev)? {
                        let value = match elem.meta(&mut g.ev, &name)? {
                            Some(v) => to_json(&mut g.ev, &v)?,
                            None => {
                                eprintln!("derivation '{}' has invalid meta attribute '{name}'", elem.name);
                                Json::Null
                            }
                        };
                        meta.push((name, value));
                    }
                    object.push(("meta".to_string(), Json::Object(meta)));
                }
                Ok(())
            })();
            if let Err(e) = filled
                && !EvalFailure::is_assertion(&e)
            {
                return Err(e);
            }
            root.push((elem.attr_path.clone(), Json::Object(object)));
        }
        let mut text = Vec::new();
        Json::Object(root).write(&mut text, 0);
        text.push(b'\n');
        out.write_all(&text)?;
        return Ok(());
    }

    if xml {
        let mut text = Vec::new();
        text.extend_from_slice(b"<?xml version='1.0' encoding='utf-8'?>\n<items>\n");
        for elem in &elems {
            if elem.failed {
                continue;
            }
            // When the element's evaluation fails an assertion (or throws), the
            // item is skipped, as CppNix skips it.
            let mut item = Vec::new();
            let written = (|| -> anyhow::Result<bool> {
                let out_path = if print_status || g.prebuilt_only { Some(elem.out_path(&mut g.ev)?) } else { None };
                if g.prebuilt_only
                    && !out_path.as_ref().is_some_and(|p| valid_paths.contains(p) || substitutable_paths.contains(p))
                {
                    return Ok(false);
                }
                // XMLAttrs is a std::map: attributes come out sorted by name.
                let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
                if print_status {
                    let out_path = out_path.clone().unwrap_or_default();
                    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
                    attrs.insert("installed", flag(installed_paths.contains(&out_path)));
                    attrs.insert("valid", flag(valid_paths.contains(&out_path)));
                    attrs.insert("substitutable", flag(substitutable_paths.contains(&out_path)));
                }
                attrs.insert("attrPath", elem.attr_path.clone());
                attrs.insert("name", elem.name.clone());
                attrs.insert("pname", elem.pname());
                attrs.insert("version", elem.version());
                let output_name = match &elem.attrs {
                    Some(a) => match a.get(nivis_eval::Sym::from_str("outputName")).cloned() {
                        Some(v) => g.ev.force_string(&v, Pos::NONE).ev()?.to_str_lossy().into_owned(),
                        None => String::new(),
                    },
                    None => String::new(),
                };
                attrs.insert("outputName", output_name);
                if compare_versions {
                    let (diff, version) = compare_version_against_set(elem, others);
                    if diff != '-' {
                        attrs.insert("versionDiff", diff.to_string());
                        attrs.insert("maxComparedVersion", version);
                    }
                }
                let system = elem.system(&mut g.ev)?;
                if !system.is_empty() {
                    attrs.insert("system", system);
                }
                if print_drv_path && let Some(drv) = elem.drv_path(&mut g.ev)? {
                    attrs.insert("drvPath", drv);
                }
                if print_description {
                    let description = elem.meta_string(&mut g.ev, "description")?;
                    if !description.is_empty() {
                        attrs.insert("description", description);
                    }
                }
                item.extend_from_slice(b"  <item");
                for (name, value) in &attrs {
                    xml_attribute(&mut item, name, value.as_bytes());
                }
                item.extend_from_slice(b">\n");
                // Paths only with --out-path: CppNix does not evaluate them otherwise.
                let outputs: Vec<(String, Option<String>)> = if print_out_path {
                    elem.outputs(&mut g.ev, false)?.into_iter().map(|(name, path)| (name, Some(path))).collect()
                } else {
                    elem.output_names(&mut g.ev)?.into_iter().map(|name| (name, None)).collect()
                };
                for (name, path) in outputs {
                    item.extend_from_slice(b"    <output");
                    xml_attribute(&mut item, "name", name.as_bytes());
                    if let Some(path) = path {
                        xml_attribute(&mut item, "path", path.as_bytes());
                    }
                    item.extend_from_slice(b" />\n");
                }
                if print_meta {
                    for name in elem.meta_names(&mut g.ev)? {
                        let Some(value) = elem.meta(&mut g.ev, &name)? else {
                            eprintln!("derivation '{}' has invalid meta attribute '{name}'", elem.name);
                            continue;
                        };
                        xml_meta(&mut g.ev, &mut item, &name, &value)?;
                    }
                }
                item.extend_from_slice(b"  </item>\n");
                Ok(true)
            })();
            match written {
                Ok(true) => text.extend_from_slice(&item),
                Ok(false) => {}
                // Once the item is open (its outputs and meta come after), CppNix
                // closes it and keeps what it wrote.
                Err(e) if EvalFailure::is_assertion(&e) => {
                    if !item.is_empty() {
                        text.extend_from_slice(&item);
                        text.extend_from_slice(b"  </item>\n");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        text.extend_from_slice(b"</items>\n");
        out.write_all(&text)?;
        return Ok(());
    }

    let mut table = Vec::new();
    for elem in &elems {
        if elem.failed {
            continue;
        }
        // An element whose evaluation fails an assertion (or throws) is skipped,
        // as CppNix skips it ("skipping derivation named ... which gives an
        // assertion failure", said only with -v): `nix-env -qa --drv-path` lists
        // a package set with unfree or broken packages.
        let row = (|| -> anyhow::Result<Option<Vec<String>>> {
            if g.prebuilt_only {
                let out_path = elem.out_path(&mut g.ev)?;
                if !valid_paths.contains(&out_path) && !substitutable_paths.contains(&out_path) {
                    return Ok(None);
                }
            }
            let mut columns = Vec::new();
            if print_status {
                let out_path = elem.out_path(&mut g.ev)?;
                let is_installed = installed_paths.contains(&out_path);
                let is_valid = valid_paths.contains(&out_path);
                let has_substitute = substitutable_paths.contains(&out_path);
                columns.push(format!(
                    "{}{}{}",
                    if is_installed { "I" } else { "-" },
                    if is_valid { "P" } else { "-" },
                    if has_substitute { "S" } else { "-" }
                ));
            }
            if print_attr_path {
                columns.push(elem.attr_path.clone());
            }
            if print_name {
                columns.push(elem.name.clone());
            }
            if compare_versions {
                let (diff, version) = compare_version_against_set(elem, others);
                columns.push(format!("{diff} {version}"));
            }
            if print_system {
                columns.push(elem.system(&mut g.ev)?);
            }
            if print_drv_path {
                columns.push(elem.drv_path(&mut g.ev)?.unwrap_or_else(|| "-".to_string()));
            }
            if print_out_path {
                let mut s = String::new();
                for (name, path) in elem.outputs(&mut g.ev, false)? {
                    if !s.is_empty() {
                        s.push(';');
                    }
                    if name != "out" {
                        s.push_str(&name);
                        s.push('=');
                    }
                    s.push_str(&path);
                }
                columns.push(s);
            }
            if print_description {
                columns.push(elem.meta_string(&mut g.ev, "description")?);
            }
            Ok(Some(columns))
        })();
        match row {
            Ok(Some(columns)) => table.push(columns),
            Ok(None) => {}
            Err(e) if EvalFailure::is_assertion(&e) => {}
            Err(e) => return Err(e),
        }
    }
    print_table(&table, &mut out)?;
    Ok(())
}
