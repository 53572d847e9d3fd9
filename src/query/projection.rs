//! Projection (SPEC §4.4): the default view (optional properties only when included),
//! `paths` (a path into a reference expands it), `expand` (a reference replaced by the
//! target's default view, up to 3 hops), and the principal's property filter.

use crate::model::acl;
use crate::model::document::{Plurals, StoredDoc, render};
use crate::model::ids::ObjectId;
use crate::model::org::Account;
use crate::model::schema::{ENVELOPE, ObjectDef, PropDef, PropType};
use serde_json::{Map, Value};

pub const MAX_EXPAND_HOPS: usize = 3;

/// What projection needs from outside: definitions and referenced documents.
pub trait Lookup {
    fn def(&mut self, object: &str) -> Option<ObjectDef>;
    /// The default view of a referenced document the viewer may read, if it exists.
    fn expanded(&mut self, def: &ObjectDef, id: ObjectId) -> Option<Map<String, Value>>;
}

#[derive(Debug, Clone, Default)]
pub struct Projector {
    pub paths: Vec<String>,
    pub include: Vec<String>,
    pub expand: Vec<String>,
    pub principal: Option<Account>,
}

fn reference_leaf(s: &str) -> bool {
    matches!(s, "_id" | "object" | "path")
}

/// Walks a dot path through Documents and References (into their targets); calls `at_ref`
/// for each Reference crossed with the segments left after it.
fn walk_path(
    def: &ObjectDef,
    path: &str,
    cat: &[ObjectDef],
) -> Result<(Option<PropDef>, usize), String> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("{path} is not a valid path"));
    }
    let mut props: Vec<PropDef> = def.properties.clone();
    let mut hops = 0;
    let mut last: Option<PropDef> = None;
    for (i, seg) in segs.iter().enumerate() {
        let p = props
            .iter()
            .find(|p| p.name == *seg)
            .cloned()
            .ok_or_else(|| format!("{seg} is not a property in {path}"))?;
        let rest = &segs[i + 1..];
        match p.ty {
            PropType::Document => props = p.properties.clone(),
            PropType::Reference if !rest.is_empty() => {
                if rest.len() == 1 && reference_leaf(rest[0]) {
                    return Ok((Some(p), hops));
                }
                let target = p.source_object.clone().unwrap_or_default();
                if target == "account" {
                    return Err(format!("{path}: account references cannot be expanded"));
                }
                if !p.expandable {
                    return Err(format!("{path}: {} is not expandable", p.name));
                }
                hops += 1;
                if hops > MAX_EXPAND_HOPS {
                    return Err(format!("{path}: at most {MAX_EXPAND_HOPS} references deep"));
                }
                let t = cat
                    .iter()
                    .find(|o| o.name == target)
                    .ok_or_else(|| format!("{path}: unknown object {target}"))?;
                props = t.properties.clone();
            }
            PropType::File
                if rest.len() == 1
                    && matches!(
                        rest[0],
                        "mime" | "filename" | "size" | "ETag" | "path" | "name" | "state"
                    ) =>
            {
                return Ok((Some(p), hops));
            }
            _ if !rest.is_empty() => {
                return Err(format!("{path}: {} has no sub-properties", p.name));
            }
            _ => {}
        }
        last = Some(p);
    }
    Ok((last, hops))
}

/// Checks a `paths`/`include` entry; the message says what is wrong.
pub fn check_path(def: &ObjectDef, path: &str, cat: &[ObjectDef]) -> Result<(), String> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    if ENVELOPE.contains(&first) {
        let rest: Vec<&str> = parts.collect();
        return match rest.as_slice() {
            [] => Ok(()),
            [leaf] if matches!(first, "creator" | "owner") && reference_leaf(leaf) => Ok(()),
            _ => Err(format!("{path} is not a path of {}", def.name)),
        };
    }
    walk_path(def, path, cat).map(|_| ())
}

/// Checks an `expand` entry: it must end at an expandable Reference.
pub fn check_expand(def: &ObjectDef, path: &str, cat: &[ObjectDef]) -> Result<(), String> {
    match walk_path(def, path, cat)? {
        (Some(p), _) if p.ty == PropType::Reference => {
            if p.source_object.as_deref() == Some("account") {
                Err(format!("{path}: account references cannot be expanded"))
            } else if !p.expandable {
                Err(format!("{path}: {} is not expandable", p.name))
            } else {
                Ok(())
            }
        }
        _ => Err(format!("{path} is not a Reference property")),
    }
}

impl Projector {
    /// Whether the principal (if any) may read the document.
    pub fn readable(&self, def: &ObjectDef, doc: &StoredDoc) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|a| acl::can_read(def, doc, a))
    }

    /// Expansions to apply: `expand`, and every reference that a `paths` entry reaches into.
    fn expansions(&self) -> Vec<Vec<&str>> {
        let mut out: Vec<Vec<&str>> = self.expand.iter().map(|e| e.split('.').collect()).collect();
        for p in &self.paths {
            let segs: Vec<&str> = p.split('.').collect();
            for n in 1..segs.len() {
                if !(n + 1 == segs.len() && reference_leaf(segs[n])) {
                    out.push(segs[..n].to_vec());
                }
            }
        }
        out.sort_by_key(|s| s.len());
        out.dedup();
        out
    }

    pub fn project<P: Plurals + ?Sized>(
        &self,
        def: &ObjectDef,
        doc: &StoredDoc,
        cat: &P,
        lookup: &mut dyn Lookup,
    ) -> Map<String, Value> {
        let mut full = render(def, doc, cat);
        if let Some(a) = &self.principal {
            strip_unreadable(&def.properties, &mut full, acl::level(def, doc, a));
        }
        self.shape(&def.properties, full, lookup)
    }

    /// Expansions, then the default view or `paths`, over an already rendered map.
    pub fn shape(
        &self,
        props: &[PropDef],
        mut full: Map<String, Value>,
        lookup: &mut dyn Lookup,
    ) -> Map<String, Value> {
        for segs in self.expansions() {
            expand_at(&mut full, props, &segs, lookup, MAX_EXPAND_HOPS);
        }
        if self.paths.is_empty() {
            drop_optional(props, &mut full, "", &self.include);
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

fn is_expanded(v: &Value) -> bool {
    v.get("created").is_some()
}

fn for_each_object(v: &mut Value, mut f: impl FnMut(&mut Value)) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(&mut f),
        other => f(other),
    }
}

fn expand_at(
    m: &mut Map<String, Value>,
    props: &[PropDef],
    segs: &[&str],
    lookup: &mut dyn Lookup,
    hops: usize,
) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let Some(p) = props.iter().find(|p| p.name == *first) else {
        return;
    };
    let Some(v) = m.get_mut(*first) else { return };
    match p.ty {
        PropType::Document => for_each_object(v, |x| {
            if let Value::Object(o) = x {
                expand_at(o, &p.properties, rest, lookup, hops);
            }
        }),
        PropType::Reference if p.expandable && hops > 0 => {
            let target = p.source_object.as_deref().unwrap_or_default();
            if target == "account" {
                return;
            }
            let Some(tdef) = lookup.def(target) else {
                return;
            };
            for_each_object(v, |x| {
                if !is_expanded(x) {
                    let id = x
                        .get("_id")
                        .and_then(|i| i.as_str())
                        .and_then(ObjectId::parse);
                    if let Some(t) = id.and_then(|id| lookup.expanded(&tdef, id)) {
                        *x = Value::Object(t);
                    }
                }
                if !rest.is_empty()
                    && is_expanded(x)
                    && let Value::Object(o) = x
                {
                    expand_at(o, &tdef.properties, rest, lookup, hops - 1);
                }
            });
        }
        _ => {}
    }
}

pub fn strip_unreadable(props: &[PropDef], m: &mut Map<String, Value>, level: u8) {
    for p in props {
        if p.read_level() > level {
            m.shift_remove(&p.name);
        } else if let Some(v) = m.get_mut(&p.name) {
            strip_nested(p, v, level);
        }
    }
}

/// Inside the value of a readable `p`: removes what `level` may not read.
pub fn strip_nested(p: &PropDef, v: &mut Value, level: u8) {
    if p.ty != PropType::Document {
        return;
    }
    match v {
        Value::Object(inner) => strip_unreadable(&p.properties, inner, level),
        Value::Array(items) => {
            for it in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                strip_unreadable(&p.properties, it, level);
            }
        }
        _ => {}
    }
}

pub fn drop_optional(
    props: &[PropDef],
    m: &mut Map<String, Value>,
    base: &str,
    include: &[String],
) {
    for p in props {
        let path = crate::model::input::join(base, &p.name);
        if p.optional && !include.contains(&path) {
            m.shift_remove(&p.name);
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
            let slot = dst.entry(key.to_string()).or_insert_with(|| {
                let mut o = Map::new();
                if let Some(id) = m.get("_id") {
                    o.insert("_id".into(), id.clone());
                }
                Value::Object(o)
            });
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
                    if let (Value::Object(im), Value::Object(om)) = (it, o)
                        && let Some(inner) = im.get(*first)
                    {
                        pick(first, inner, more, om);
                    }
                }
            }
        }
        _ => {}
    }
}

/// No lookups: references stay references.
pub struct NoLookup;

impl Lookup for NoLookup {
    fn def(&mut self, _: &str) -> Option<ObjectDef> {
        None
    }
    fn expanded(&mut self, _: &ObjectDef, _: ObjectId) -> Option<Map<String, Value>> {
        None
    }
}

/// The document as `viewer` may see it: properties above its read level are removed, so a
/// `where` or `sort` cannot probe them. Borrowed when nothing is hidden.
pub fn visible_doc<'a>(
    def: &ObjectDef,
    doc: &'a StoredDoc,
    viewer: Option<&Account>,
) -> std::borrow::Cow<'a, StoredDoc> {
    let Some(a) = viewer else {
        return std::borrow::Cow::Borrowed(doc);
    };
    if a.is_admin() || !has_read_access(&def.properties) {
        return std::borrow::Cow::Borrowed(doc);
    }
    let mut d = doc.clone();
    strip_unreadable(&def.properties, &mut d.props, acl::level(def, doc, a));
    std::borrow::Cow::Owned(d)
}

fn has_read_access(props: &[PropDef]) -> bool {
    props
        .iter()
        .any(|p| p.read_access.is_some() || has_read_access(&p.properties))
}
