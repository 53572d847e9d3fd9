//! Documents: the stored form, casting and validating input against a definition, and the
//! full JSON form that output (GET, exports) is projected from.

use crate::fault::{Category, Fault, Faults, Result};
use crate::model::ids::{ObjectId, now_iso, parse_date};
use crate::model::schema::{ObjectDef, PropDef, PropType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub const MAX_ARRAY_ITEMS: usize = 10_000;
pub const MAX_STRING_CHARS: usize = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredDoc {
    pub id: ObjectId,
    pub created: String,
    pub updated: Option<String>,
    pub creator: ObjectId,
    pub owner: ObjectId,
    /// Values in stored form: Dates as ISO strings, ObjectIds and References as hex strings,
    /// Files as facets carrying their internal `blob` id.
    pub props: Map<String, Value>,
}

/// Whether a Reference target exists; implemented by the store (and by bulk inserts, which
/// also see the documents of their own batch).
pub trait RefCheck {
    fn exists(&mut self, object: &str, id: ObjectId) -> Result<bool>;
}

fn bad(faults: &mut Faults, path: &str, msg: impl Into<String>) {
    faults.bad(path, msg)
}

/// Validates a create body; returns the new document. `index` is set for bulk lines.
pub fn new_doc(
    def: &ObjectDef,
    body: Value,
    caller: ObjectId,
    refs: &mut dyn RefCheck,
) -> Result<StoredDoc> {
    let mut faults = Faults::default();
    let Value::Object(map) = body else {
        return Err(Fault::validation(vec![
            Fault::new(
                Category::Validation,
                "invalidValue",
                "A document must be a JSON object",
            )
            .at("body"),
        ]));
    };
    let props = cast_props(&def.properties, map, "", true, refs, &mut faults, None)?;
    faults.finish()?;
    Ok(StoredDoc {
        id: ObjectId::new(),
        created: now_iso(),
        updated: None,
        creator: caller,
        owner: caller,
        props,
    })
}

/// Applies a PATCH body: given values replace stored ones, `null` removes (unless required).
/// Returns the updated document and the file blobs that the patch dropped.
pub fn patch_doc(
    def: &ObjectDef,
    doc: &StoredDoc,
    body: Value,
    refs: &mut dyn RefCheck,
) -> Result<(StoredDoc, Vec<ObjectId>)> {
    let mut faults = Faults::default();
    let Value::Object(map) = body else {
        return Err(Fault::validation(vec![
            Fault::new(
                Category::Validation,
                "invalidValue",
                "A patch must be a JSON object",
            )
            .at("body"),
        ]));
    };
    let mut out = doc.clone();
    let mut dropped = Vec::new();
    let mut sets = Map::new();
    for (k, v) in map {
        if ENVELOPE_READ_ONLY.contains(&k.as_str()) {
            faults.push(
                Fault::new(
                    Category::Validation,
                    "readOnly",
                    format!("{k} is read-only"),
                )
                .at(&k),
            );
            continue;
        }
        match def.prop(&k) {
            None => faults.push(unknown(&k)),
            Some(p) if v.is_null() => {
                if p.required {
                    bad(&mut faults, &k, format!("{k} is required"));
                } else if let Some(old) = out.props.remove(&k) {
                    collect_blobs(p, &old, &mut dropped);
                }
            }
            Some(p) if p.ty == PropType::File => bad(
                &mut faults,
                &k,
                "File values are set by uploading to .../content",
            ),
            Some(_) => {
                sets.insert(k, v);
            }
        }
    }
    let existing = Some(&doc.props);
    let cast = cast_props(
        &def.properties,
        sets,
        "",
        false,
        refs,
        &mut faults,
        existing,
    )?;
    faults.finish()?;
    for (k, v) in cast {
        if let (Some(p), Some(old)) = (def.prop(&k), out.props.get(&k)) {
            collect_blobs(p, old, &mut dropped);
            // files kept inside re-sent Document elements are not dropped
            let mut kept = Vec::new();
            collect_blobs(p, &v, &mut kept);
            dropped.retain(|b| !kept.contains(b));
        }
        out.props.insert(k, v);
    }
    out.updated = Some(now_iso());
    Ok((out, dropped))
}

const ENVELOPE_READ_ONLY: &[&str] = &["_id", "object", "created", "updated", "creator", "owner"];

fn unknown(path: &str) -> Fault {
    Fault::new(
        Category::Validation,
        "unknownField",
        format!("Unknown property {path}"),
    )
    .at(path)
}

/// Casts every given value; reports unknown keys, and missing required ones when `create`.
fn cast_props(
    defs: &[PropDef],
    mut map: Map<String, Value>,
    base: &str,
    create: bool,
    refs: &mut dyn RefCheck,
    faults: &mut Faults,
    existing: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for p in defs {
        let path = crate::model::input::join(base, &p.name);
        match map.remove(&p.name) {
            None | Some(Value::Null) => {
                if create && p.required {
                    bad(faults, &path, format!("{} is required", p.name));
                }
            }
            Some(v) => {
                let prev = existing.and_then(|e| e.get(&p.name));
                if let Some(c) = cast_value(p, v, &path, refs, faults, prev)? {
                    out.insert(p.name.clone(), c);
                }
            }
        }
    }
    for k in map.keys() {
        let path = crate::model::input::join(base, k);
        if ENVELOPE_READ_ONLY.contains(&k.as_str()) && base.is_empty() {
            faults.push(
                Fault::new(
                    Category::Validation,
                    "readOnly",
                    format!("{k} is read-only"),
                )
                .at(path),
            );
        } else {
            faults.push(unknown(&path));
        }
    }
    Ok(out)
}

fn cast_value(
    p: &PropDef,
    v: Value,
    path: &str,
    refs: &mut dyn RefCheck,
    faults: &mut Faults,
    prev: Option<&Value>,
) -> Result<Option<Value>> {
    match p.ty {
        PropType::List => {
            bad(
                faults,
                path,
                "List properties are virtual and cannot be written",
            );
            return Ok(None);
        }
        PropType::File => {
            bad(
                faults,
                path,
                "File values are set by uploading to .../content",
            );
            return Ok(None);
        }
        _ => {}
    }
    if !p.array {
        if v.is_array() && p.ty != PropType::Any {
            bad(faults, path, format!("{} is not an array", p.name));
            return Ok(None);
        }
        return cast_scalar(p, v, path, refs, faults, prev);
    }
    let items = match v {
        Value::Array(a) => a,
        single => vec![single],
    };
    if items.len() > MAX_ARRAY_ITEMS {
        bad(
            faults,
            path,
            format!("At most {MAX_ARRAY_ITEMS} array items"),
        );
        return Ok(None);
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.into_iter().enumerate() {
        let ip = format!("{path}[{i}]");
        if it.is_null() {
            bad(faults, &ip, "Array items cannot be null");
            continue;
        }
        if let Some(c) = cast_scalar(p, it, &ip, refs, faults, prev)? {
            out.push(c);
        }
    }
    Ok(Some(Value::Array(out)))
}

fn cast_scalar(
    p: &PropDef,
    v: Value,
    path: &str,
    refs: &mut dyn RefCheck,
    faults: &mut Faults,
    prev: Option<&Value>,
) -> Result<Option<Value>> {
    let ty = p.ty;
    let out = match (ty, v) {
        (PropType::Any, v) => Some(v),
        (PropType::String, Value::String(s)) => {
            if s.chars().count() > MAX_STRING_CHARS {
                bad(
                    faults,
                    path,
                    format!("At most {MAX_STRING_CHARS} characters"),
                );
                None
            } else {
                Some(Value::String(s))
            }
        }
        (PropType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (PropType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (PropType::Number, Value::Number(n)) => Some(Value::Number(n)),
        (PropType::Number, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Some(number(f)),
            _ => None,
        },
        (PropType::Boolean, Value::Bool(b)) => Some(Value::Bool(b)),
        (PropType::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Some(Value::Bool(s == "true"))
        }
        (PropType::Date, v) => parse_date(&v).map(Value::String),
        (PropType::ObjectId, Value::String(s)) => {
            ObjectId::parse(&s.to_ascii_lowercase()).map(|o| Value::String(o.to_hex()))
        }
        (PropType::Reference, v) => {
            let id = match &v {
                Value::String(s) => ObjectId::parse(s),
                Value::Object(m) => m
                    .get("_id")
                    .and_then(|x| x.as_str())
                    .and_then(ObjectId::parse),
                _ => None,
            };
            match id {
                None => None,
                Some(id) => {
                    let target = p.source_object.as_deref().unwrap_or_default();
                    if refs.exists(target, id)? {
                        Some(Value::String(id.to_hex()))
                    } else {
                        faults.push(
                            Fault::new(
                                Category::Validation,
                                "invalidReference",
                                format!("No {target} with _id {id}"),
                            )
                            .at(path),
                        );
                        return Ok(None);
                    }
                }
            }
        }
        (PropType::Document, Value::Object(mut m)) => {
            let id = if p.array {
                let given = m.remove("_id");
                match given {
                    None | Some(Value::Null) => Some(ObjectId::new()),
                    Some(Value::String(s)) => match ObjectId::parse(&s) {
                        Some(o) => Some(o),
                        None => {
                            bad(faults, &format!("{path}._id"), "_id must be an ObjectId");
                            return Ok(None);
                        }
                    },
                    Some(_) => {
                        bad(faults, &format!("{path}._id"), "_id must be an ObjectId");
                        return Ok(None);
                    }
                }
            } else {
                None
            };
            // Files inside Document elements keep their facets across a re-send of the element.
            let prev_elem = prev_element(prev, id);
            let mut kept_files = Map::new();
            for sp in p.properties.iter().filter(|sp| sp.ty == PropType::File) {
                if let Some(fv) = m.remove(&sp.name)
                    && !fv.is_null()
                {
                    match prev_elem.and_then(|e| e.get(&sp.name)) {
                        Some(old) => {
                            kept_files.insert(sp.name.clone(), old.clone());
                        }
                        None => bad(
                            faults,
                            &format!("{path}.{}", sp.name),
                            "File values are set by uploading to .../content",
                        ),
                    }
                }
            }
            let mut inner = cast_props(&p.properties, m, path, true, refs, faults, None)?;
            inner.extend(kept_files);
            let mut out = Map::new();
            if let Some(id) = id {
                out.insert("_id".into(), Value::String(id.to_hex()));
            }
            out.extend(inner);
            Some(Value::Object(out))
        }
        _ => None,
    };
    if out.is_none() && !faults.0.iter().any(|f| f.path.as_deref() == Some(path)) {
        bad(
            faults,
            path,
            format!("Value cannot be cast to {}", ty.name()),
        );
    }
    Ok(out)
}

fn prev_element(prev: Option<&Value>, id: Option<ObjectId>) -> Option<&Map<String, Value>> {
    match (prev?, id) {
        (Value::Array(items), Some(id)) => items
            .iter()
            .filter_map(|i| i.as_object())
            .find(|m| m.get("_id").and_then(|x| x.as_str()) == Some(id.to_hex().as_str())),
        (Value::Object(m), None) => Some(m),
        _ => None,
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        json!(f as i64)
    } else {
        json!(f)
    }
}

/// Blob ids held by a stored value of property `p` (files, also inside Documents).
pub fn collect_blobs(p: &PropDef, v: &Value, out: &mut Vec<ObjectId>) {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    for it in items {
        match p.ty {
            PropType::File => {
                if let Some(b) = it
                    .get("blob")
                    .and_then(|b| b.as_str())
                    .and_then(ObjectId::parse)
                {
                    out.push(b);
                }
            }
            PropType::Document => {
                for sp in &p.properties {
                    if let Some(sv) = it.get(&sp.name) {
                        collect_blobs(sp, sv, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Everything about an org's catalog that rendering needs.
pub trait Plurals {
    /// The plural name of `object`, used in reference paths.
    fn plural(&self, object: &str) -> String;
}

impl Plurals for [ObjectDef] {
    fn plural(&self, object: &str) -> String {
        if object == "account" {
            return "accounts".into();
        }
        self.iter()
            .find(|o| o.name == object)
            .map(|o| o.plural_name.clone())
            .unwrap_or_else(|| format!("{object}s"))
    }
}

pub fn reference(object: &str, plural: &str, id: &str) -> Value {
    json!({"_id": id, "object": object, "path": format!("/{plural}/{id}")})
}

/// The full JSON form of a document: envelope then every property with a value, in
/// definition order. Projections (default view, paths, include) are taken from it.
pub fn render<P: Plurals + ?Sized>(
    def: &ObjectDef,
    doc: &StoredDoc,
    cat: &P,
) -> Map<String, Value> {
    let mut m = Map::new();
    let id = doc.id.to_hex();
    m.insert("_id".into(), Value::String(id.clone()));
    m.insert("object".into(), Value::String(def.name.clone()));
    m.insert("created".into(), Value::String(doc.created.clone()));
    if let Some(u) = &doc.updated {
        m.insert("updated".into(), Value::String(u.clone()));
    }
    m.insert(
        "creator".into(),
        reference("account", "accounts", &doc.creator.to_hex()),
    );
    m.insert(
        "owner".into(),
        reference("account", "accounts", &doc.owner.to_hex()),
    );
    let base = format!("/{}/{}", def.plural_name, id);
    for p in &def.properties {
        if let Some(v) = doc.props.get(&p.name) {
            m.insert(p.name.clone(), render_value(p, v, &base, cat));
        }
    }
    m
}

fn render_value<P: Plurals + ?Sized>(p: &PropDef, v: &Value, base: &str, cat: &P) -> Value {
    // plain values and references need no path (the common case: no allocation for it)
    if !matches!(p.ty, PropType::File | PropType::Document) {
        return match (p.ty, v) {
            (PropType::Reference, Value::Array(items)) if p.array => Value::Array(
                items
                    .iter()
                    .map(|it| render_scalar(p, it, "", cat))
                    .collect(),
            ),
            _ => render_scalar(p, v, "", cat),
        };
    }
    let path = format!("{base}/{}", p.name);
    if p.array
        && let Value::Array(items) = v
    {
        return Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, it)| {
                    let ip = match it.get("_id").and_then(|x| x.as_str()) {
                        Some(eid) if p.ty == PropType::Document => format!("{path}/{eid}"),
                        _ => format!("{path}/{i}"),
                    };
                    render_scalar(p, it, &ip, cat)
                })
                .collect(),
        );
    }
    render_scalar(p, v, &path, cat)
}

fn render_scalar<P: Plurals + ?Sized>(p: &PropDef, v: &Value, path: &str, cat: &P) -> Value {
    match p.ty {
        PropType::Reference => match v.as_str() {
            Some(id) => {
                let obj = p.source_object.as_deref().unwrap_or_default();
                reference(obj, &cat.plural(obj), id)
            }
            None => v.clone(),
        },
        PropType::File => render_facet(v, &format!("{path}/content")),
        PropType::Document => match v {
            Value::Object(src) => {
                let mut out = Map::new();
                if let Some(id) = src.get("_id") {
                    out.insert("_id".into(), id.clone());
                }
                for sp in &p.properties {
                    if let Some(sv) = src.get(&sp.name) {
                        out.insert(sp.name.clone(), render_value(sp, sv, path, cat));
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        },
        _ => v.clone(),
    }
}

/// A stored file facet as clients see it: no internal blob id, with its download path.
pub fn render_facet(v: &Value, path: &str) -> Value {
    let Value::Object(src) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    out.insert("object".into(), json!("facet"));
    for k in ["name", "mime", "filename", "size", "ETag", "state"] {
        if let Some(x) = src.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    out.insert("path".into(), Value::String(path.to_string()));
    Value::Object(out)
}
