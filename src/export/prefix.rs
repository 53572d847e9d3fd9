//! `prefix` (SPEC §4.2): `<_id>/<property>` exports the elements of one document's
//! Document-array property, or the members of its List property, instead of the object's
//! documents; `.` (or no prefix) exports the object itself.

use crate::fault::Result;
use crate::model::ids::ObjectId;
use crate::model::schema::{ObjectDef, PropDef, PropType};
use crate::query::ast::Expr;
use crate::query::parse::{parse_where, parse_where_elements};

/// What an export reads.
#[derive(Debug, Clone)]
pub enum Target {
    Object(ObjectDef),
    Elements {
        parent: ObjectDef,
        parent_id: ObjectId,
        prop: PropDef,
    },
    List {
        parent_id: ObjectId,
        source: ObjectDef,
        linked: String,
    },
}

/// Lookups prefix resolution needs.
pub trait PrefixContext {
    fn object(&self, name: &str) -> Result<Option<ObjectDef>>;
    fn doc_exists(&self, object: &str, id: ObjectId) -> Result<bool>;
}

impl Target {
    /// The definition that `where`, `paths`, `include` and `expand` are checked against.
    pub fn shape_def(&self) -> ObjectDef {
        match self {
            Target::Object(d) => d.clone(),
            Target::Elements { parent, prop, .. } => ObjectDef {
                properties: prop.properties.clone(),
                ..parent.clone()
            },
            Target::List { source, .. } => source.clone(),
        }
    }

    pub fn parse_where(&self, src: &str) -> Result<Expr> {
        match self {
            Target::Elements { prop, .. } => parse_where_elements(src, &prop.properties),
            _ => parse_where(src, &self.shape_def()),
        }
    }
}

/// Resolves a prefix; `Err(message)` names what is wrong with it.
pub fn resolve(
    def: &ObjectDef,
    prefix: Option<&str>,
    ctx: &dyn PrefixContext,
) -> Result<std::result::Result<Target, String>> {
    let Some(prefix) = prefix.filter(|p| *p != ".") else {
        return Ok(Ok(Target::Object(def.clone())));
    };
    let Some((id_s, prop_name)) = prefix.split_once('/') else {
        return Ok(Err("prefix is <_id>/<property> or .".into()));
    };
    let Some(id) = ObjectId::parse(id_s) else {
        return Ok(Err(format!("{id_s} is not an _id")));
    };
    let Some(prop) = def.prop(prop_name) else {
        return Ok(Err(format!(
            "{prop_name} is not a property of {}",
            def.name
        )));
    };
    let target = match prop.ty {
        PropType::Document if prop.array => Target::Elements {
            parent: def.clone(),
            parent_id: id,
            prop: prop.clone(),
        },
        PropType::List => {
            let src_name = prop.source_object.clone().unwrap_or_default();
            let Some(source) = ctx.object(&src_name)? else {
                return Ok(Err(format!(
                    "the List's object {src_name} no longer exists"
                )));
            };
            Target::List {
                parent_id: id,
                source,
                linked: prop.linked_property.clone().unwrap_or_default(),
            }
        }
        _ => {
            return Ok(Err(format!(
                "{prop_name} is neither a Document array nor a List"
            )));
        }
    };
    if !ctx.doc_exists(&def.name, id)? {
        return Ok(Err(format!("No {} with _id {id}", def.name)));
    }
    Ok(Ok(target))
}
