//! Projection: the default view (optional properties only when included), `paths`, and the
//! property filter of a principal (`readAccess` above the principal's level is left out).

use crate::model::acl;
use crate::model::document::{Plurals, StoredDoc, render};
use crate::model::org::Account;
use crate::model::schema::{ENVELOPE, ObjectDef, PropDef, PropType};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default)]
pub struct Projector {
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub principal: Option<Account>,
}

/// Checks a `paths`/`include` entry against the definition; the message says what is wrong.
pub fn check_path(def: &ObjectDef, path: &str) -> Result<(), String> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    if ENVELOPE.contains(&first) {
        return if parts.next().is_none() || matches!(first, "creator" | "owner") {
            Ok(())
        } else {
            Err(format!("{path} is not a path of {}", def.name))
        };
    }
    let Some(mut p) = def.prop(first) else {
        return Err(format!("{first} is not a property of {}", def.name));
    };
    for part in parts {
        match p.ty {
            PropType::Document => {
                p = p.prop(part).ok_or_else(|| format!("{part} is not a property of {}", p.name))?;
            }
            PropType::File if matches!(part, "mime" | "filename" | "size" | "ETag" | "path" | "name" | "state") => {
                return Ok(());
            }
            PropType::Reference if matches!(part, "_id" | "object" | "path") => return Ok(()),
            PropType::Reference => {
                return Err(format!("{path}: paths into references need expand, which is not supported yet"));
            }
            _ => return Err(format!("{path}: {} has no sub-properties", p.name)),
        }
    }
    Ok(())
}

impl Projector {
    /// Whether the principal (if any) may read the document.
    pub fn readable(&self, def: &ObjectDef, doc: &StoredDoc) -> bool {
        self.principal.as_ref().is_none_or(|a| acl::can_read(def, doc, a))
    }

    pub fn project<P: Plurals + ?Sized>(&self, def: &ObjectDef, doc: &StoredDoc, cat: &P) -> Map<String, Value> {
        let mut full = render(def, doc, cat);
        if let Some(a) = &self.principal {
            let level = acl::level(def, doc, a);
            strip_unreadable(&def.properties, &mut full, level);
        }
        if self.paths.is_empty() {
            drop_optional(&def.properties, &mut full, "", &self.include);
            return full;
        }
        let mut out = Map::new();
        for k in ["_id", "object"] {
            if let Some(v) = full.get(k) {
                out.insert(k.into(), v.clone());
            }
        }
        for (k, v) in &full {
            for p in &self.paths {
                let mut parts = p.split('.');
                if parts.next() == Some(k.as_str()) {
                    let rest: Vec<&str> = parts.collect();
                    pick(k, v, &rest, &mut out);
                }
            }
        }
        out
    }
}

fn strip_unreadable(props: &[PropDef], m: &mut Map<String, Value>, level: u8) {
    for p in props {
        if p.read_level() > level {
            m.remove(&p.name);
        } else if p.ty == PropType::Document {
            match m.get_mut(&p.name) {
                Some(Value::Object(inner)) => strip_unreadable(&p.properties, inner, level),
                Some(Value::Array(items)) => {
                    for it in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                        strip_unreadable(&p.properties, it, level);
                    }
                }
                _ => {}
            }
        }
    }
}

fn drop_optional(props: &[PropDef], m: &mut Map<String, Value>, base: &str, include: &[String]) {
    for p in props {
        let path = crate::model::input::join(base, &p.name);
        if p.optional && !include.iter().any(|i| *i == path) {
            m.remove(&p.name);
        } else if p.ty == PropType::Document {
            match m.get_mut(&p.name) {
                Some(Value::Object(inner)) => drop_optional(&p.properties, inner, &path, include),
                Some(Value::Array(items)) => {
                    for it in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                        drop_optional(&p.properties, it, &path, include);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Copies the value at `rest` under `key` into `dst`, through objects and arrays of objects.
fn pick(key: &str, v: &Value, rest: &[&str], dst: &mut Map<String, Value>) {
    let Some((first, more)) = rest.split_first() else {
        dst.insert(key.to_string(), v.clone());
        return;
    };
    match v {
        Value::Object(m) => {
            let Some(inner) = m.get(*first) else { return };
            let slot = dst.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(sm) = slot {
                pick(first, inner, more, sm);
            }
        }
        Value::Array(items) => {
            let slot = dst.entry(key.to_string()).or_insert_with(|| {
                Value::Array(
                    items
                        .iter()
                        .map(|it| {
                            let mut e = Map::new();
                            if let Some(id) = it.get("_id") {
                                e.insert("_id".into(), id.clone());
                            }
                            Value::Object(e)
                        })
                        .collect(),
                )
            });
            if let Value::Array(out) = slot {
                for (it, o) in items.iter().zip(out.iter_mut()) {
                    if let (Value::Object(im), Value::Object(om)) = (it, o) {
                        if let Some(inner) = im.get(*first) {
                            pick(first, inner, more, om);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}
