//! The export fast lane: documents rendered straight from their stored bytes into an output
//! (`formats::emit`), for exports shaped by the default view (`include`, a principal's read
//! levels) with no `paths`, `expand` or files. The output is exactly what
//! `Projector::project` and serialization give (the differential test below holds both to
//! the same bytes), without building a map, cloning values or hashing keys per document.

use crate::export::formats::emit::{Emit, Key, RefShape};
use crate::fault::{Fault, Result};
use crate::model::document::Plurals;
use crate::model::ids::ObjectId;
use crate::model::org::Account;
use crate::model::schema::{ObjectDef, PropDef, PropType};
use crate::query::Projector;
use crate::query::matcher::Root;
use crate::store::rawdoc::{Item, Lookup, Raw, RawDoc, Reader};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// Everything rendering needs from the definitions, worked out once per export.
pub struct Plan {
    object: String,
    plural: String,
    props: Vec<PropPlan>,
    /// Creators and owners.
    account: RefShape,
}

struct PropPlan {
    name: String,
    key: Key,
    ty: PropType,
    array: bool,
    /// Left out of the default view: optional and not in `include`.
    dropped: bool,
    read_level: u8,
    /// References: the target object and its plural name.
    target: RefShape,
    /// Document properties: their own properties.
    children: Vec<PropPlan>,
}

impl PropPlan {
    fn shown(&self, level: u8) -> bool {
        !self.dropped && self.read_level <= level
    }
}

/// The level that hides nothing (no principal).
pub const ALL: u8 = u8::MAX;

impl Plan {
    /// The plan for `projector` over `def`, or None when its shape needs the general path.
    pub fn for_projector(def: &ObjectDef, cat: &[ObjectDef], p: &Projector) -> Option<Plan> {
        if !p.paths.is_empty() || !p.expand.is_empty() {
            return None;
        }
        Some(Plan {
            object: def.name.clone(),
            plural: def.plural_name.clone(),
            props: plan_props(&def.properties, "", cat, &p.include),
            account: RefShape::new("account", "accounts"),
        })
    }

    /// Renders `doc` as seen at access `level` (`ALL` without a principal).
    pub fn render<E: Emit>(&self, doc: &RawDoc, level: u8, e: &mut E) -> Result<()> {
        e.begin_object();
        e.key("_id");
        e.str(doc.id);
        e.key("object");
        e.str(&self.object);
        e.key("created");
        e.str(doc.created);
        if let Some(u) = doc.updated {
            e.key("updated");
            e.str(u);
        }
        e.key("creator");
        e.reference(&self.account, doc.creator);
        e.key("owner");
        e.reference(&self.account, doc.owner);
        let plural = At::root(&self.plural);
        let base = At::Str(&plural, doc.id);
        let mut props = Lookup::new(&doc.props);
        for p in self.props.iter().filter(|p| p.shown(level)) {
            if let Some(v) = props.get(&p.name) {
                e.key_ready(&p.key);
                value(p, v, &base, level, e)?;
            }
        }
        e.end_object();
        Ok(())
    }
}

fn plan_props(
    props: &[PropDef],
    base: &str,
    cat: &[ObjectDef],
    include: &[String],
) -> Vec<PropPlan> {
    props
        .iter()
        .map(|p| {
            let path = crate::model::input::join(base, &p.name);
            let target = p.source_object.clone().unwrap_or_default();
            let plural = cat.plural(&target);
            PropPlan {
                name: p.name.clone(),
                key: Key::new(&p.name),
                ty: p.ty,
                array: p.array,
                dropped: p.optional && !include.contains(&path),
                read_level: p.read_level(),
                target: RefShape::new(&target, &plural),
                children: plan_props(&p.properties, &path, cat, include),
            }
        })
        .collect()
}

/// A resource path (`/plural/id/prop/...`), built only where it is written.
enum At<'a> {
    Root(&'a str),
    Str(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    fn root(s: &'a str) -> At<'a> {
        At::Root(s)
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            At::Root(s) => {
                out.push('/');
                out.push_str(s);
            }
            At::Str(up, s) => {
                up.write(out);
                out.push('/');
                out.push_str(s);
            }
            At::Index(up, i) => {
                up.write(out);
                let _ = write!(out, "/{i}");
            }
        }
    }
}

fn get<'a>(m: &[(&[u8], Raw<'a>)], k: &str) -> Option<Raw<'a>> {
    m.iter().find(|(x, _)| *x == k.as_bytes()).map(|(_, v)| *v)
}

/// As `document::render_value`, then the default view's removals.
fn value<E: Emit>(p: &PropPlan, v: Raw, base: &At, level: u8, e: &mut E) -> Result<()> {
    if !matches!(p.ty, PropType::File | PropType::Document) {
        if p.ty == PropType::Reference
            && p.array
            && let Some(items) = v.items()
        {
            e.begin_array();
            for it in items {
                e.item();
                scalar(p, it, base, level, e)?;
            }
            e.end_array();
            return Ok(());
        }
        return scalar(p, v, base, level, e);
    }
    let path = At::Str(base, &p.name);
    if p.array
        && let Some(items) = v.items()
    {
        e.begin_array();
        for (i, it) in items.into_iter().enumerate() {
            e.item();
            let eid = match p.ty {
                PropType::Document => it.entries().and_then(|m| get(&m, "_id")?.as_str()),
                _ => None,
            };
            let ip = match eid {
                Some(eid) => At::Str(&path, eid),
                None => At::Index(&path, i),
            };
            scalar(p, it, &ip, level, e)?;
        }
        e.end_array();
        return Ok(());
    }
    scalar(p, v, &path, level, e)
}

/// As `document::render_scalar`; malformed shapes (which validation never stores) pass
/// through as they are.
fn scalar<E: Emit>(p: &PropPlan, v: Raw, path: &At, level: u8, e: &mut E) -> Result<()> {
    match p.ty {
        PropType::Reference => match v.as_str() {
            Some(id) => {
                e.reference(&p.target, id);
                Ok(())
            }
            None => transcode(&mut v.unchecked_reader(), e),
        },
        PropType::File => match v.entries() {
            Some(m) => {
                e.begin_object();
                e.key("object");
                e.str("facet");
                for k in ["name", "mime", "filename", "size", "ETag", "state"] {
                    if let Some(x) = get(&m, k) {
                        e.key(k);
                        transcode(&mut x.unchecked_reader(), e)?;
                    }
                }
                e.key("path");
                let mut content = String::new();
                At::Str(path, "content").write(&mut content);
                e.str(&content);
                e.end_object();
                Ok(())
            }
            None => transcode(&mut v.unchecked_reader(), e),
        },
        PropType::Document => match v.entries() {
            Some(m) => {
                e.begin_object();
                if let Some(id) = get(&m, "_id") {
                    e.key("_id");
                    transcode(&mut id.unchecked_reader(), e)?;
                }
                let mut props = Lookup::new(&m);
                for sp in p.children.iter().filter(|c| c.shown(level)) {
                    if let Some(sv) = props.get(&sp.name) {
                        e.key_ready(&sp.key);
                        value(sp, sv, path, level, e)?;
                    }
                }
                e.end_object();
                Ok(())
            }
            None => transcode(&mut v.unchecked_reader(), e),
        },
        _ => transcode(&mut v.unchecked_reader(), e),
    }
}

/// One stored value as it is, as `serde_json` would have decoded and written it.
fn transcode<E: Emit>(r: &mut Reader, e: &mut E) -> Result<()> {
    match r.item()? {
        Item::Nil => e.null(),
        Item::Bool(b) => e.bool(b),
        Item::UInt(n) => e.number(&n.into()),
        Item::Int(n) => e.number(&n.into()),
        Item::Float(f) => match Number::from_f64(f) {
            Some(n) => e.number(&n),
            None => e.null(),
        },
        Item::Str(s) => e.str(s),
        Item::Text(b) => {
            if !e.utf8(b) {
                return Err(not_utf8());
            }
        }
        Item::Array(n) => {
            e.begin_array();
            for _ in 0..n {
                e.item();
                transcode(r, e)?;
            }
            e.end_array();
        }
        Item::Map(n) => {
            e.begin_object();
            for _ in 0..n {
                let k = match r.item()? {
                    Item::Str(k) => k,
                    Item::Text(b) => std::str::from_utf8(b).map_err(|_| not_utf8())?,
                    _ => return Err(Fault::internal("stored record is unreadable", "map key")),
                };
                e.key(k);
                transcode(r, e)?;
            }
            e.end_object();
        }
        Item::Other => {
            return Err(Fault::internal(
                "stored record is unreadable",
                "binary value",
            ));
        }
    }
    Ok(())
}

fn not_utf8() -> Fault {
    Fault::internal("stored record is unreadable", "a string is not UTF-8")
}

/// The access level of `viewer` on a stored document (`ALL` without a viewer).
pub fn level(def: &ObjectDef, doc: &RawDoc, viewer: Option<&Account>) -> u8 {
    match viewer {
        None => ALL,
        Some(a) => {
            let owner = ObjectId::parse(doc.owner).unwrap_or_default();
            crate::model::acl::level_for_owner(def, owner, a)
        }
    }
}

/// A stored document as a `where` sees it: values decoded only when asked for, and those
/// above the viewer's read level absent (as `projection::visible_doc`).
pub struct RawRoot<'a> {
    pub def: &'a ObjectDef,
    pub doc: &'a RawDoc<'a>,
    /// The viewer's access level (`ALL`: nothing is hidden).
    pub level: u8,
}

impl Root for RawRoot<'_> {
    fn get(&self, key: &str) -> Option<Cow<'_, Value>> {
        let s = |v: &str| Some(Cow::Owned(Value::String(v.to_string())));
        match key {
            "_id" => s(self.doc.id),
            "created" => s(self.doc.created),
            "updated" => self.doc.updated.and_then(s),
            "creator" => s(self.doc.creator),
            "owner" => s(self.doc.owner),
            k => {
                let raw = self.doc.prop(k)?;
                let def = self.def.prop(k);
                let mut v = raw.to_value().ok()?;
                if self.level != ALL
                    && let Some(p) = def
                {
                    if p.read_level() > self.level {
                        return None;
                    }
                    crate::query::projection::strip_nested(p, &mut v, self.level);
                }
                Some(Cow::Owned(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::formats::emit::JsonOut;
    use crate::model::document::{RefCheck, StoredDoc, new_doc};
    use crate::model::schema::parse_definition;
    use crate::query::projection::NoLookup;
    use crate::store::codec::encode;
    use proptest::prelude::*;
    use serde_json::json;

    struct AnyRef;
    impl RefCheck for AnyRef {
        fn exists(&mut self, _: &str, _: ObjectId) -> Result<bool> {
            Ok(true)
        }
    }

    /// A definition with every type, optional and read-restricted properties, nested.
    fn catalog() -> Vec<ObjectDef> {
        let site = parse_definition(
            json!({"name": "c_site", "pluralName": "c_sites", "properties": [
                {"name": "c_name", "type": "String"}]}),
            &[],
        )
        .unwrap();
        let step = parse_definition(json!({"name": "c_step", "pluralName": "c_steps", "properties": [
            {"name": "c_s", "type": "String"},
            {"name": "c_n", "type": "Number"},
            {"name": "c_i", "type": "Number", "optional": true},
            {"name": "c_d", "type": "Date"},
            {"name": "c_b", "type": "Boolean", "readAccess": "update"},
            {"name": "c_r", "type": "Reference", "sourceObject": "c_site"},
            {"name": "c_ra", "type": "Reference", "sourceObject": "c_site", "array": true},
            {"name": "c_acct", "type": "Reference", "sourceObject": "account"},
            {"name": "c_sa", "type": "String", "array": true},
            {"name": "c_f", "type": "File"},
            {"name": "c_doc", "type": "Document", "properties": [
                {"name": "c_x", "type": "Number"},
                {"name": "c_secret", "type": "String", "readAccess": "delete"},
                {"name": "c_opt", "type": "String", "optional": true},
                {"name": "c_r", "type": "Reference", "sourceObject": "c_site"}]},
            {"name": "c_docs", "type": "Document", "array": true, "optional": true, "properties": [
                {"name": "c_y", "type": "String"},
                {"name": "c_f", "type": "File"}]},
        ]}), std::slice::from_ref(&site))
        .unwrap();
        vec![site, step]
    }

    fn stored(d: &ObjectDef, body: Value, files: bool) -> StoredDoc {
        let mut doc = new_doc(d, body, ObjectId::new(), &mut AnyRef).unwrap();
        if files {
            let facet = json!({"name": "c_f", "mime": "text/plain", "filename": "a \"b\".txt",
                "size": 3, "ETag": "abc", "state": "ready", "blob": ObjectId::new().to_hex()});
            doc.props.insert("c_f".into(), facet.clone());
            if let Some(Value::Array(items)) = doc.props.get_mut("c_docs") {
                for it in items.iter_mut().filter_map(|i| i.as_object_mut()) {
                    it.insert("c_f".into(), facet.clone());
                }
            }
        }
        doc
    }

    fn both(
        d: &ObjectDef,
        cat: &[ObjectDef],
        doc: &StoredDoc,
        p: &Projector,
    ) -> (Vec<u8>, Vec<u8>) {
        let general = serde_json::to_vec(&p.project(d, doc, cat, &mut NoLookup)).unwrap();
        let plan = Plan::for_projector(d, cat, p).unwrap();
        let bytes = encode(doc);
        let raw = RawDoc::parse(&bytes).unwrap();
        let mut out = JsonOut::default();
        plan.render(&raw, level(d, &raw, p.principal.as_ref()), &mut out)
            .unwrap();
        (general, out.buf)
    }

    fn viewer(roles: &[&str]) -> Account {
        Account {
            id: ObjectId::new(),
            org: "o".into(),
            email: "v@x.test".into(),
            name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            password_hash: None,
            created: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{0,8}",
            "\\PC{0,12}",
            Just("\"\\\n\u{1}</script>".to_string())
        ]
    }

    proptest! {
        #[test]
        fn fast_lane_equals_project_then_serialize(
            s in text(), n in any::<i64>(), f in -1e9f64..1e9, i in any::<u32>(),
            b in any::<bool>(), tags in proptest::collection::vec(text(), 0..4),
            docs in proptest::collection::vec(text(), 0..3),
            with_optional in any::<bool>(), with_doc in any::<bool>(), files in any::<bool>(),
            include in proptest::sample::subsequence(vec!["c_i", "c_docs", "c_doc.c_opt"], 0..3),
            who in 0..4usize,
        ) {
            let cat = catalog();
            let d = &cat[1];
            let site = ObjectId::new().to_hex();
            let mut body = json!({
                "c_s": s, "c_n": if b { json!(n) } else { json!(f) }, "c_d": "2026-03-04T05:06:07.000Z",
                "c_b": b, "c_r": site, "c_ra": [site, ObjectId::new().to_hex()],
                "c_acct": ObjectId::new().to_hex(), "c_sa": tags,
            });
            if with_optional {
                body["c_i"] = json!(i);
                body["c_docs"] = Value::Array(docs.iter().map(|y| json!({"c_y": y})).collect());
            }
            if with_doc {
                body["c_doc"] = json!({"c_x": f, "c_secret": s, "c_opt": "o", "c_r": site});
            }
            let doc = stored(d, body, files);
            let principal = match who {
                0 => None,
                1 => Some(viewer(&["administrator"])),
                2 => Some(viewer(&[])),
                _ => {
                    let mut a = viewer(&[]);
                    a.id = doc.owner;
                    Some(a)
                }
            };
            let p = Projector {
                include: include.iter().map(|x| x.to_string()).collect(),
                principal,
                ..Default::default()
            };
            let (general, fast) = both(d, &cat, &doc, &p);
            prop_assert_eq!(String::from_utf8(general).unwrap(), String::from_utf8(fast).unwrap());
        }
    }

    #[test]
    fn paths_and_expand_take_the_general_path() {
        let cat = catalog();
        let p = Projector {
            paths: vec!["c_s".into()],
            ..Default::default()
        };
        assert!(Plan::for_projector(&cat[1], &cat, &p).is_none());
        let p = Projector {
            expand: vec!["c_r".into()],
            ..Default::default()
        };
        assert!(Plan::for_projector(&cat[1], &cat, &p).is_none());
    }

    #[test]
    fn where_sees_what_the_viewer_may_read() {
        let cat = catalog();
        let d = &cat[1];
        let doc = stored(
            d,
            json!({"c_s": "a", "c_n": 1, "c_d": "2026-03-04T05:06:07.000Z", "c_b": true,
                "c_r": ObjectId::new().to_hex(), "c_doc": {"c_x": 2, "c_secret": "s"}}),
            false,
        );
        let bytes = encode(&doc);
        let raw = RawDoc::parse(&bytes).unwrap();
        let nobody = viewer(&[]);
        for (lvl, a) in [(ALL, None), (0u8, Some(&nobody))] {
            let root = RawRoot {
                def: d,
                doc: &raw,
                level: lvl,
            };
            let visible = crate::query::projection::visible_doc(d, &doc, a);
            for k in [
                "_id", "created", "updated", "creator", "owner", "c_s", "c_b", "c_doc", "c_x",
            ] {
                let want = crate::query::matcher::Root::get(visible.as_ref(), k);
                same(root.get(k), want, k);
            }
        }
    }

    fn same(a: Option<Cow<Value>>, b: Option<Cow<Value>>, k: &str) {
        assert_eq!(a.map(|v| v.into_owned()), b.map(|v| v.into_owned()), "{k}");
    }
}
