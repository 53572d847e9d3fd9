//! Object definitions (SPEC §3): parsing and validating them, and the lookups the rest of the
//! server needs (by name or plural, property by dot path).

use crate::fault::{Fault, Faults, Result};
use crate::model::input::{Fields, join};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

pub const RESERVED_OBJECTS: &[&str] = &[
    "account",
    "org",
    "object",
    "script",
    "view",
    "export",
    "deployment",
];
/// Names that are part of every document's envelope and cannot be properties.
pub const ENVELOPE: &[&str] = &["_id", "object", "created", "updated", "creator", "owner"];
const MAX_PROPERTIES: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropType {
    String,
    Number,
    Boolean,
    Date,
    ObjectId,
    Reference,
    Document,
    File,
    List,
    Any,
}

impl PropType {
    pub fn parse(s: &str) -> Option<PropType> {
        Some(match s {
            "String" => PropType::String,
            "Number" => PropType::Number,
            "Boolean" => PropType::Boolean,
            "Date" => PropType::Date,
            "ObjectId" => PropType::ObjectId,
            "Reference" => PropType::Reference,
            "Document" => PropType::Document,
            "File" => PropType::File,
            "List" => PropType::List,
            "Any" => PropType::Any,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            PropType::String => "String",
            PropType::Number => "Number",
            PropType::Boolean => "Boolean",
            PropType::Date => "Date",
            PropType::ObjectId => "ObjectId",
            PropType::Reference => "Reference",
            PropType::Document => "Document",
            PropType::File => "File",
            PropType::List => "List",
            PropType::Any => "Any",
        }
    }
}

/// Access levels, as used by `readAccess` and ACL grants.
pub const ACCESS_LEVELS: &[(&str, u8)] = &[
    ("public", 1),
    ("connected", 2),
    ("read", 4),
    ("share", 5),
    ("update", 6),
    ("delete", 7),
    ("script", 8),
];

pub fn access_level(name: &str) -> Option<u8> {
    ACCESS_LEVELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PropDef {
    pub name: String,
    pub label: Option<String>,
    pub ty: PropType,
    pub array: bool,
    pub optional: bool,
    pub required: bool,
    pub read_access: Option<String>,
    pub indexed: bool,
    pub properties: Vec<PropDef>,
    pub source_object: Option<String>,
    pub linked_property: Option<String>,
    pub expandable: bool,
}

impl PropDef {
    pub fn read_level(&self) -> u8 {
        self.read_access
            .as_deref()
            .and_then(access_level)
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert(
            "label".into(),
            json!(self.label.clone().unwrap_or_else(|| self.name.clone())),
        );
        m.insert("type".into(), json!(self.ty.name()));
        m.insert("array".into(), json!(self.array));
        m.insert("optional".into(), json!(self.optional));
        m.insert("required".into(), json!(self.required));
        m.insert("indexed".into(), json!(self.indexed));
        if let Some(r) = &self.read_access {
            m.insert("readAccess".into(), json!(r));
        }
        if self.ty == PropType::Document {
            m.insert(
                "properties".into(),
                Value::Array(self.properties.iter().map(|p| p.to_json()).collect()),
            );
        }
        if let Some(s) = &self.source_object {
            m.insert("sourceObject".into(), json!(s));
        }
        if let Some(l) = &self.linked_property {
            m.insert("linkedProperty".into(), json!(l));
        }
        if self.ty == PropType::Reference {
            m.insert("expandable".into(), json!(self.expandable));
        }
        Value::Object(m)
    }

    pub fn prop(&self, name: &str) -> Option<&PropDef> {
        self.properties.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AclEntry {
    pub kind: String,
    pub target: String,
    pub allow: String,
}

impl AclEntry {
    pub fn level(&self) -> u8 {
        access_level(&self.allow).unwrap_or(0)
    }
    fn to_json(&self) -> Value {
        json!({"type": self.kind, "target": self.target, "allow": self.allow})
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectDef {
    pub id: crate::model::ids::ObjectId,
    pub name: String,
    pub plural_name: String,
    pub label: String,
    pub description: Option<String>,
    pub default_acl: Vec<AclEntry>,
    pub properties: Vec<PropDef>,
    pub created: String,
    pub updated: Option<String>,
}

impl ObjectDef {
    pub fn prop(&self, name: &str) -> Option<&PropDef> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Follows a dot path through Document properties (`c_doc.c_inner`).
    pub fn prop_path(&self, path: &str) -> Option<&PropDef> {
        let mut parts = path.split('.');
        let mut cur = self.prop(parts.next()?)?;
        for part in parts {
            cur = cur.prop(part)?;
        }
        Some(cur)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id,
            "object": "object",
            "name": self.name,
            "pluralName": self.plural_name,
            "label": self.label,
            "description": self.description,
            "defaultAcl": self.default_acl.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
            "properties": self.properties.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
            "created": self.created,
            "updated": self.updated,
        })
    }
}

fn object_name_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^c_[a-z0-9_]{1,38}$").unwrap())
}

fn prop_name_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9_]{0,39}$").unwrap())
}

/// What definition validation needs to know about the other objects of the org.
pub trait Catalog {
    fn object(&self, name: &str) -> Option<&ObjectDef>;
}

impl Catalog for [ObjectDef] {
    fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.iter()
            .find(|o| o.name == name || o.plural_name == name)
    }
}

/// Parses a `POST /objects` body into a definition, checking it against the org's catalog.
pub fn parse_definition(body: Value, others: &[ObjectDef]) -> Result<ObjectDef> {
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    f.read_only(&["_id", "object", "created", "updated"]);
    let name = f.string("name", true, 40);
    let plural = f.string("pluralName", false, 40);
    let label = f.string("label", false, 100);
    let description = f.string("description", false, 255);
    let acl = f
        .take("defaultAcl")
        .map(|v| parse_acl(v, "defaultAcl", f.faults));
    let props_v = f.take("properties");
    f.finish();

    let name = name.unwrap_or_default();
    if !name.is_empty() {
        check_object_name(&name, "name", &mut faults);
    }
    let plural = plural.unwrap_or_else(|| format!("{name}s"));
    if !name.is_empty() {
        check_object_name(&plural, "pluralName", &mut faults);
        if plural == name {
            faults.bad("pluralName", "pluralName must differ from name");
        }
        for o in others {
            if o.name == name || o.plural_name == name {
                faults.push(
                    Fault::exists("object", format!("An object named {name} already exists"))
                        .at("name"),
                );
            }
            if o.name == plural || o.plural_name == plural {
                faults.push(
                    Fault::exists("object", format!("The name {plural} is already taken"))
                        .at("pluralName"),
                );
            }
        }
    }
    let props = match props_v {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => parse_properties(v, "properties", &name, others, false, &mut faults),
    };
    check_list_links(&name, &props, others, &mut faults);
    // a name clash alone is a conflict (409), not a validation error
    if !faults.0.is_empty()
        && faults
            .0
            .iter()
            .all(|f| f.err_code == "cortex.exists.object")
    {
        return Err(faults.0.remove(0));
    }
    faults.finish()?;
    Ok(ObjectDef {
        id: crate::model::ids::ObjectId::new(),
        label: label.unwrap_or_else(|| name.clone()),
        name,
        plural_name: plural,
        description,
        default_acl: acl.unwrap_or_default(),
        properties: props,
        created: crate::model::ids::now_iso(),
        updated: None,
    })
}

/// Applies a `PATCH /objects/{name}` body: label, description, defaultAcl, and new
/// properties (existing ones cannot change type; existing documents stay valid).
pub fn apply_patch(def: &ObjectDef, body: Value, others: &[ObjectDef]) -> Result<ObjectDef> {
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    f.read_only(&["_id", "object", "created", "updated", "name", "pluralName"]);
    let label = f.string("label", false, 100);
    let description = f.string("description", false, 255);
    let acl = f
        .take("defaultAcl")
        .map(|v| parse_acl(v, "defaultAcl", f.faults));
    let props_v = f.take("properties");
    f.finish();
    let mut out = def.clone();
    if let Some(l) = label {
        out.label = l;
    }
    if description.is_some() {
        out.description = description;
    }
    if let Some(a) = acl {
        out.default_acl = a;
    }
    if let Some(v) = props_v {
        let catalog: Vec<ObjectDef> = others
            .iter()
            .filter(|o| o.name != def.name)
            .cloned()
            .collect();
        let new_props = parse_properties(v, "properties", &def.name, &catalog, false, &mut faults);
        for (i, p) in new_props.into_iter().enumerate() {
            let at = format!("properties[{i}]");
            match out.properties.iter_mut().find(|e| e.name == p.name) {
                Some(existing) => {
                    if existing.ty != p.ty || existing.array != p.array {
                        faults.bad(&at, format!("The type of {} cannot be changed", p.name));
                    } else if p.required && !existing.required {
                        faults.bad(&at, "An existing property cannot become required");
                    } else {
                        let keep_props = existing.properties.clone();
                        *existing = p;
                        if existing.ty == PropType::Document {
                            merge_nested(existing, keep_props);
                        }
                    }
                }
                None => {
                    if out.properties.len() >= MAX_PROPERTIES {
                        faults.bad(&at, format!("At most {MAX_PROPERTIES} properties"));
                    } else {
                        out.properties.push(p);
                    }
                }
            }
        }
        check_list_links(&def.name, &out.properties, &catalog, &mut faults);
    }
    faults.finish()?;
    out.updated = Some(crate::model::ids::now_iso());
    Ok(out)
}

/// Nested properties removed by a patch are kept, so stored sub-values stay readable.
fn merge_nested(p: &mut PropDef, old: Vec<PropDef>) {
    for o in old {
        if p.prop(&o.name).is_none() {
            p.properties.push(o);
        }
    }
}

fn check_object_name(name: &str, field: &str, faults: &mut Faults) {
    let base = name.strip_prefix("c_").unwrap_or(name);
    if RESERVED_OBJECTS.contains(&name) || RESERVED_OBJECTS.iter().any(|r| format!("{r}s") == name)
    {
        faults.push(
            Fault::new(
                crate::fault::Category::Validation,
                "reservedName",
                format!("{name} is a reserved object name"),
            )
            .at(field),
        );
    } else if !object_name_re().is_match(name) || base.is_empty() {
        faults.bad(
            field,
            format!("{field} must start with c_ and hold only a-z, 0-9 and _ (at most 40 chars)"),
        );
    }
}

fn parse_acl(v: Value, path: &str, faults: &mut Faults) -> Vec<AclEntry> {
    let Value::Array(items) = v else {
        faults.bad(path, "defaultAcl must be an array");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(mut f) = Fields::from_value(it, &at, faults) else {
            continue;
        };
        let kind = f.string("type", true, 20);
        let target = f.string("target", true, 100);
        let allow = f.string("allow", true, 20);
        if let Some(k) = &kind
            && k != "role"
            && k != "account"
        {
            f.bad("type", "type must be role or account");
        }
        if let Some(a) = &allow
            && !matches!(a.as_str(), "read" | "update" | "delete")
        {
            f.bad("allow", "allow must be read, update or delete");
        }
        if let (Some(k), Some(t)) = (&kind, &target)
            && k == "account"
            && crate::model::ids::ObjectId::parse(t).is_none()
        {
            f.bad("target", "an account target must be an account _id");
        }
        f.finish();
        if let (Some(kind), Some(target), Some(allow)) = (kind, target, allow) {
            out.push(AclEntry {
                kind,
                target,
                allow,
            });
        }
    }
    out
}

fn parse_properties(
    v: Value,
    path: &str,
    object: &str,
    others: &[ObjectDef],
    nested: bool,
    faults: &mut Faults,
) -> Vec<PropDef> {
    let Value::Array(items) = v else {
        faults.bad(path, "properties must be an array");
        return Vec::new();
    };
    if items.len() > MAX_PROPERTIES {
        faults.bad(path, format!("At most {MAX_PROPERTIES} properties"));
        return Vec::new();
    }
    let mut out: Vec<PropDef> = Vec::new();
    for (i, it) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        if let Some(p) = parse_property(it, &at, object, others, nested, faults) {
            if out.iter().any(|o| o.name == p.name) {
                faults.bad(&join(&at, "name"), format!("Duplicate property {}", p.name));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn parse_property(
    v: Value,
    at: &str,
    object: &str,
    others: &[ObjectDef],
    nested: bool,
    faults: &mut Faults,
) -> Option<PropDef> {
    let mut f = Fields::from_value(v, at, faults)?;
    let name = f.string("name", true, 40);
    let label = f.string("label", false, 100);
    let ty_s = f.string("type", true, 20);
    let array = f.boolean("array").unwrap_or(false);
    let optional = f.boolean("optional").unwrap_or(false);
    let required = f.boolean("required").unwrap_or(false);
    let indexed = f.boolean("indexed").unwrap_or(false);
    let expandable = f.boolean("expandable");
    let read_access = f.string("readAccess", false, 20);
    let source_object = f.string("sourceObject", false, 40);
    let linked_property = f.string("linkedProperty", false, 40);
    let sub = f.take("properties");
    let ty = ty_s.as_deref().and_then(|t| {
        let p = PropType::parse(t);
        if p.is_none() {
            f.bad("type", format!("Unknown property type {t}"));
        }
        p
    });
    if let Some(n) = &name {
        if ENVELOPE.contains(&n.as_str()) {
            f.bad("name", format!("{n} is a reserved property name"));
        } else if !prop_name_re().is_match(n) {
            f.bad(
                "name",
                "name must start with a letter and hold only letters, digits and _ (at most 40)",
            );
        }
    }
    if let Some(r) = &read_access
        && access_level(r).is_none()
    {
        f.bad("readAccess", format!("Unknown access level {r}"));
    }
    let mut properties = Vec::new();
    if let Some(ty) = ty {
        if ty != PropType::Reference && expandable.is_some() {
            f.bad(
                "expandable",
                "expandable applies to Reference properties only",
            );
        }
        match ty {
            PropType::Document => {
                if nested {
                    f.bad("type", "A Document property cannot hold another Document");
                }
                match sub {
                    Some(v) if !nested => {
                        let p = f.path("properties");
                        properties = parse_properties(v, &p, object, others, true, f.faults);
                        if properties.is_empty()
                            && !f
                                .faults
                                .0
                                .iter()
                                .any(|x| x.path.as_deref().is_some_and(|x| x.starts_with(&p)))
                        {
                            f.bad(
                                "properties",
                                "A Document property needs at least one property",
                            );
                        }
                    }
                    Some(_) => {}
                    None => f.bad("properties", "A Document property needs properties"),
                }
            }
            _ => {
                if sub.is_some() {
                    f.bad("properties", "Only Document properties have properties");
                }
            }
        }
        match ty {
            PropType::Reference | PropType::List => match &source_object {
                None => f.bad(
                    "sourceObject",
                    format!("A {} needs sourceObject", ty.name()),
                ),
                Some(s) => {
                    let known = s == object
                        || others.object(s).is_some()
                        || (ty == PropType::Reference && s == "account");
                    if !known {
                        f.bad("sourceObject", format!("Unknown object {s}"));
                    }
                }
            },
            _ => {
                if source_object.is_some() {
                    f.bad(
                        "sourceObject",
                        "sourceObject applies to Reference and List only",
                    );
                }
            }
        }
        if ty == PropType::List {
            if nested {
                f.bad("type", "A List cannot be inside a Document");
            }
            if array {
                f.bad("array", "A List cannot be an array");
            }
            if linked_property.is_none() {
                f.bad("linkedProperty", "A List needs linkedProperty");
            }
        } else if linked_property.is_some() {
            f.bad("linkedProperty", "linkedProperty applies to List only");
        }
        if required && matches!(ty, PropType::File | PropType::List) {
            f.bad(
                "required",
                format!("A {} property cannot be required", ty.name()),
            );
        }
    }
    f.finish();
    Some(PropDef {
        name: name?,
        label,
        ty: ty?,
        array,
        optional,
        required,
        read_access,
        indexed,
        properties,
        source_object: source_object
            .map(|s| others.object(&s).map(|o| o.name.clone()).unwrap_or(s)),
        linked_property,
        expandable: expandable.unwrap_or(true),
    })
}

/// A List's linkedProperty must be a Reference of sourceObject that points back at `object`.
fn check_list_links(object: &str, props: &[PropDef], others: &[ObjectDef], faults: &mut Faults) {
    for (i, p) in props.iter().enumerate() {
        if p.ty != PropType::List {
            continue;
        }
        let (Some(src), Some(linked)) = (&p.source_object, &p.linked_property) else {
            continue;
        };
        let target = if src == object {
            props.iter().find(|x| &x.name == linked)
        } else {
            others.object(src).and_then(|o| o.prop(linked))
        };
        let ok = target.is_some_and(|t| {
            t.ty == PropType::Reference && t.source_object.as_deref() == Some(object)
        });
        if !ok {
            faults.bad(
                &format!("properties[{i}].linkedProperty"),
                format!("{linked} must be a Reference property of {src} pointing at {object}"),
            );
        }
    }
}
