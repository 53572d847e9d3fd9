//! Evaluating a `where` AST over stored documents, with MongoDB's semantics for the operators
//! of SPEC §5: arrays match element-wise, `null` equals a missing field, values of different
//! kinds never compare.

use super::ast::*;
use crate::model::document::StoredDoc;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;

/// Something a path can start from: a document (with its envelope) or a Document element.
pub trait Root {
    fn get(&self, key: &str) -> Option<Cow<'_, Value>>;
}

impl Root for StoredDoc {
    fn get(&self, key: &str) -> Option<Cow<'_, Value>> {
        match key {
            "_id" => Some(Cow::Owned(Value::String(self.id.to_hex()))),
            "created" => Some(Cow::Owned(Value::String(self.created.clone()))),
            "updated" => self.updated.clone().map(|u| Cow::Owned(Value::String(u))),
            "creator" => Some(Cow::Owned(Value::String(self.creator.to_hex()))),
            "owner" => Some(Cow::Owned(Value::String(self.owner.to_hex()))),
            k => self.props.get(k).map(Cow::Borrowed),
        }
    }
}

impl Root for Map<String, Value> {
    fn get(&self, key: &str) -> Option<Cow<'_, Value>> {
        Map::get(self, key).map(Cow::Borrowed)
    }
}

/// Whether `doc` satisfies `expr`.
pub fn matches(expr: &Expr, doc: &StoredDoc) -> bool {
    eval(expr, doc)
}

/// Whether the document seen through `root` satisfies `expr`.
pub fn matches_root<R: Root + ?Sized>(expr: &Expr, root: &R) -> bool {
    eval(expr, root)
}

fn eval<R: Root + ?Sized>(expr: &Expr, root: &R) -> bool {
    match expr {
        Expr::And(xs) => xs.iter().all(|x| eval(x, root)),
        Expr::Or(xs) => xs.iter().any(|x| eval(x, root)),
        Expr::Field(f, conds) => {
            let Some((first, rest)) = f.parts.split_first() else {
                return false;
            };
            let top = root.get(first);
            match (&top, rest.is_empty()) {
                (None, _) => conds.iter().all(|c| cond(c, f.ty, &[])),
                // the common case needs no allocation
                (Some(t), true) => conds.iter().all(|c| cond(c, f.ty, &[t.as_ref()])),
                (Some(t), false) => {
                    let mut terminals = Vec::new();
                    let mut missing = false;
                    collect(t, rest, &mut terminals, &mut missing);
                    conds
                        .iter()
                        .all(|c| cond_with_missing(c, f.ty, &terminals, missing))
                }
            }
        }
        // only meaningful against a value, see `eval_value`
        Expr::Value(_) => false,
    }
}

static NULL: Value = Value::Null;

/// The values at the end of `rest`, walking into objects and through arrays. An array
/// element that lacks the field counts as `null` (MongoDB), but not as existing.
fn collect<'a>(v: &'a Value, rest: &[String], out: &mut Vec<&'a Value>, missing: &mut bool) {
    collect_in(v, rest, out, missing, false)
}

fn collect_in<'a>(
    v: &'a Value,
    rest: &[String],
    out: &mut Vec<&'a Value>,
    missing: &mut bool,
    in_array: bool,
) {
    match rest.split_first() {
        None => out.push(v),
        Some((k, more)) => match v {
            Value::Object(m) => match m.get(k) {
                Some(x) => collect_in(x, more, out, missing, false),
                None if in_array => *missing = true,
                None => {}
            },
            Value::Array(items) => {
                for it in items {
                    collect_in(it, rest, out, missing, true);
                }
            }
            _ => {}
        },
    }
}

/// Whether `f` holds for any terminal value, arrays flattened one level (MongoDB's
/// element-wise view).
fn any_element(terminals: &[&Value], mut f: impl FnMut(&Value) -> bool) -> bool {
    terminals.iter().any(|t| match t {
        Value::Array(items) => items.iter().any(&mut f),
        v => f(v),
    })
}

pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => a == b,
        _ => compare(a, b) == Some(Ordering::Equal),
    }
}

fn eq_match(terminals: &[&Value], lit: &Value) -> bool {
    if lit.is_null() && terminals.is_empty() {
        return true;
    }
    any_element(terminals, |e| equal(e, lit))
}

fn in_match(terminals: &[&Value], items: &[InItem]) -> bool {
    items.iter().any(|it| match it {
        InItem::Lit(l) => eq_match(terminals, l),
        InItem::Regex(r) => any_element(terminals, |e| e.as_str().is_some_and(|s| r.is_match(s))),
    })
}

fn type_of(ty: FieldType, v: &Value) -> TypeName {
    match v {
        Value::Null => TypeName::Null,
        Value::Bool(_) => TypeName::Bool,
        Value::Number(_) => TypeName::Number,
        Value::Array(_) => TypeName::Array,
        Value::Object(_) => TypeName::Object,
        Value::String(_) => match ty {
            FieldType::Date => TypeName::Date,
            FieldType::ObjectId => TypeName::ObjectId,
            _ => TypeName::String,
        },
    }
}

/// `cond` where some array element lacked the field: equality with null holds.
fn cond_with_missing(c: &Cond, ty: FieldType, terminals: &[&Value], missing: bool) -> bool {
    if !missing {
        return cond(c, ty, terminals);
    }
    let null_in = |items: &[InItem]| items.iter().any(|i| matches!(i, InItem::Lit(Value::Null)));
    match c {
        Cond::Eq(Value::Null) => true,
        Cond::Ne(Value::Null) => false,
        Cond::In(items) if null_in(items) => true,
        Cond::Nin(items) if null_in(items) => false,
        _ => {
            let mut with_null = terminals.to_vec();
            if matches!(
                c,
                Cond::All(_) | Cond::Eq(_) | Cond::Ne(_) | Cond::In(_) | Cond::Nin(_)
            ) {
                with_null.push(&NULL);
            }
            cond(c, ty, &with_null)
        }
    }
}

fn cond(c: &Cond, ty: FieldType, terminals: &[&Value]) -> bool {
    match c {
        Cond::Eq(l) => eq_match(terminals, l),
        Cond::Ne(l) => !eq_match(terminals, l),
        Cond::Cmp(op, l) => any_element(terminals, |e| {
            compare(e, l).is_some_and(|o| match op {
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Gte => o != Ordering::Less,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Lte => o != Ordering::Greater,
            })
        }),
        Cond::In(items) => in_match(terminals, items),
        Cond::Nin(items) => !in_match(terminals, items),
        Cond::Exists(want) => terminals.is_empty() != *want,
        Cond::Regex(r) => any_element(terminals, |e| e.as_str().is_some_and(|s| r.is_match(s))),
        Cond::Size(n) => terminals
            .iter()
            .any(|t| t.as_array().is_some_and(|a| a.len() as u64 == *n)),
        Cond::All(items) => {
            !items.is_empty()
                && items.iter().all(|it| match it {
                    AllItem::Lit(l) => eq_match(terminals, l),
                    AllItem::ElemMatch(q) => elem_match(q, ty, terminals),
                })
        }
        Cond::ElemMatch(q) => elem_match(q, ty, terminals),
        Cond::Type(t) => {
            terminals.iter().any(|v| type_of(ty, v) == *t)
                || (*t != TypeName::Array && any_element(terminals, |v| type_of(ty, v) == *t))
        }
    }
}

fn elem_match(q: &Expr, ty: FieldType, terminals: &[&Value]) -> bool {
    terminals.iter().any(|t| {
        let Value::Array(items) = t else { return false };
        items.iter().any(|e| match q {
            Expr::Value(conds) => conds.iter().all(|c| cond(c, ty, &[e])),
            _ => e.as_object().is_some_and(|m| eval(q, m)),
        })
    })
}

/// The value a document has at a (non-array) field, for sorting; missing is `null`.
pub fn sort_value(doc: &StoredDoc, f: &Field) -> Value {
    let Some((first, rest)) = f.parts.split_first() else {
        return Value::Null;
    };
    let Some(top) = doc.get(first) else {
        return Value::Null;
    };
    let mut out = Vec::new();
    collect(&top, rest, &mut out, &mut false);
    out.first().map(|v| (*v).clone()).unwrap_or(Value::Null)
}

/// MongoDB's order across kinds: null < numbers < strings < booleans.
pub fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Number(_) => 1,
            Value::String(_) => 2,
            Value::Bool(_) => 3,
            _ => 4,
        }
    }
    compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b)))
}

/// Whether a Document-array element satisfies `expr` (see `parse_where_elements`).
pub fn matches_element(expr: &Expr, element: &Map<String, Value>) -> bool {
    eval(expr, element)
}
