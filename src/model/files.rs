//! Where a file lives inside a document, from the URL tail of
//! `/{plural}/{id}/<tail>/content`:
//! `prop` | `prop/<n>` (File arrays) | `docProp/fileProp` | `docArrayProp/<elemId>/fileProp`,
//! each optionally followed by `/<n>` when the File property is an array.

use crate::fault::{Fault, Result};
use crate::model::ids::ObjectId;
use crate::model::schema::{ObjectDef, PropDef, PropType};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct FileLoc {
    pub prop: String,
    /// For a property inside a Document: the Document property and, for arrays, the element.
    pub container: Option<(String, Option<ObjectId>)>,
    /// Index into a File array; None on upload to an array appends.
    pub index: Option<usize>,
    pub array: bool,
}

fn not_found() -> Fault {
    Fault::not_found("file property")
}

pub fn resolve(def: &ObjectDef, tail: &[&str]) -> Result<FileLoc> {
    let (first, rest) = tail.split_first().ok_or_else(not_found)?;
    let p = def.prop(first).ok_or_else(not_found)?;
    match p.ty {
        PropType::File => file_at(p, rest, None),
        PropType::Document => {
            let (elem, rest) = if p.array {
                let (e, r) = rest.split_first().ok_or_else(not_found)?;
                (Some(ObjectId::parse(e).ok_or_else(not_found)?), r)
            } else {
                (None, rest)
            };
            let (sub, rest) = rest.split_first().ok_or_else(not_found)?;
            let sp = p
                .prop(sub)
                .filter(|s| s.ty == PropType::File)
                .ok_or_else(not_found)?;
            file_at(sp, rest, Some((p.name.clone(), elem)))
        }
        _ => Err(not_found()),
    }
}

fn file_at(
    p: &PropDef,
    rest: &[&str],
    container: Option<(String, Option<ObjectId>)>,
) -> Result<FileLoc> {
    let index = match rest {
        [] => None,
        [n] if p.array => Some(n.parse::<usize>().map_err(|_| not_found())?),
        _ => return Err(not_found()),
    };
    Ok(FileLoc {
        prop: p.name.clone(),
        container,
        index,
        array: p.array,
    })
}

/// The map holding the file property (the document's props or a Document element).
fn holder<'a>(
    props: &'a mut Map<String, Value>,
    loc: &FileLoc,
    create: bool,
) -> Result<&'a mut Map<String, Value>> {
    match &loc.container {
        None => Ok(props),
        Some((dp, None)) => {
            if create && !props.contains_key(dp) {
                props.insert(dp.clone(), Value::Object(Map::new()));
            }
            props
                .get_mut(dp)
                .and_then(|v| v.as_object_mut())
                .ok_or_else(not_found)
        }
        Some((dp, Some(eid))) => props
            .get_mut(dp)
            .and_then(|v| v.as_array_mut())
            .and_then(|a| {
                a.iter_mut()
                    .filter_map(|e| e.as_object_mut())
                    .find(|e| e.get("_id").and_then(|x| x.as_str()) == Some(eid.to_hex().as_str()))
            })
            .ok_or_else(not_found),
    }
}

/// The stored facet at `loc`, if any.
pub fn get(props: &Map<String, Value>, loc: &FileLoc) -> Option<Value> {
    let holder: &Map<String, Value> = match &loc.container {
        None => props,
        Some((dp, None)) => props.get(dp)?.as_object()?,
        Some((dp, Some(eid))) => {
            let id = eid.to_hex();
            props
                .get(dp)?
                .as_array()?
                .iter()
                .filter_map(|e| e.as_object())
                .find(|e| e.get("_id").and_then(|x| x.as_str()) == Some(id.as_str()))?
        }
    };
    let v = holder.get(&loc.prop)?;
    match (loc.array, loc.index) {
        (true, Some(i)) => v.as_array()?.get(i).cloned(),
        (true, None) => None,
        (false, _) => Some(v.clone()),
    }
}

/// Puts `facet` at `loc`; returns the facet it replaced.
pub fn set(props: &mut Map<String, Value>, loc: &FileLoc, facet: Value) -> Result<Option<Value>> {
    let h = holder(props, loc, true)?;
    if !loc.array {
        return Ok(h.insert(loc.prop.clone(), facet));
    }
    let arr = h
        .entry(loc.prop.clone())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(items) = arr else {
        return Err(not_found());
    };
    match loc.index {
        None => {
            if items.len() >= crate::model::document::MAX_ARRAY_ITEMS {
                return Err(Fault::invalid("arrayFull", "The file array is full"));
            }
            items.push(facet);
            Ok(None)
        }
        Some(i) if i < items.len() => Ok(Some(std::mem::replace(&mut items[i], facet))),
        Some(_) => Err(not_found()),
    }
}

/// A stored facet (the `blob` field is internal and never rendered).
pub fn facet(mime: &str, filename: &str, size: u64, sha: &str, blob: ObjectId) -> Value {
    serde_json::json!({
        "object": "facet", "name": "content", "mime": mime, "filename": filename,
        "size": size, "ETag": sha, "state": 2, "blob": blob.to_hex(),
    })
}

pub fn blob_of(facet: &Value) -> Option<ObjectId> {
    facet
        .get("blob")
        .and_then(|b| b.as_str())
        .and_then(ObjectId::parse)
}
