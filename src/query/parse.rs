//! `where` → typed AST, validated against the definition (SPEC §5). Every fault is
//! `cortex.invalidArgument.query` with the exact path of the offending part, e.g.
//! `where.$or[1].c_age.$foo`.

use super::ast::*;
use crate::fault::{Fault, Result};
use crate::model::ids::{ObjectId, parse_date};
use crate::model::schema::{ObjectDef, PropDef, PropType};
use regex::Regex;
use serde_json::{Map, Value};

pub const MAX_DEPTH: usize = 8;
pub const MAX_LIST: usize = 10_000;
pub const MAX_BRANCHES: usize = 100;
pub const MAX_WHERE_CHARS: usize = 1024;

fn fault(path: &str, msg: impl Into<String>) -> Fault {
    Fault::invalid("query", msg).at(path)
}

/// The properties visible at a level: the object's (with the envelope) or a Document's.
#[derive(Clone, Copy)]
struct Scope<'a> {
    props: &'a [PropDef],
    envelope: bool,
    /// Document-array elements carry an `_id`.
    element_id: bool,
}

/// Parses a `where` string against `def`. Paths in faults start with `base` (`where`).
pub fn parse_where(src: &str, def: &ObjectDef) -> Result<Expr> {
    if src.chars().count() > MAX_WHERE_CHARS {
        return Err(fault(
            "where",
            format!("where is longer than {MAX_WHERE_CHARS} characters"),
        ));
    }
    let v: Value = serde_json::from_str(src)
        .map_err(|e| fault("where", format!("where is not valid JSON: {e}")))?;
    parse_value(&v, def)
}

/// Parses an already-decoded query.
pub fn parse_value(v: &Value, def: &ObjectDef) -> Result<Expr> {
    let scope = Scope {
        props: &def.properties,
        envelope: true,
        element_id: false,
    };
    match v {
        Value::Object(m) => parse_query(m, scope, "where", 1),
        _ => Err(fault("where", "where must be a JSON object")),
    }
}

fn parse_query(m: &Map<String, Value>, scope: Scope, path: &str, depth: usize) -> Result<Expr> {
    if depth > MAX_DEPTH {
        return Err(fault(
            path,
            format!("The query is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let mut parts = Vec::with_capacity(m.len());
    for (k, v) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = v else {
                    return Err(fault(&p, format!("{k} takes an array of queries")));
                };
                if items.is_empty() || items.len() > MAX_BRANCHES {
                    return Err(fault(&p, format!("{k} takes 1 to {MAX_BRANCHES} queries")));
                }
                let mut subs = Vec::with_capacity(items.len());
                for (i, it) in items.iter().enumerate() {
                    let ip = format!("{p}[{i}]");
                    let Value::Object(sm) = it else {
                        return Err(fault(&ip, "Each branch must be a query object"));
                    };
                    subs.push(parse_query(sm, scope, &ip, depth + 1)?);
                }
                parts.push(if k == "$and" {
                    Expr::And(subs)
                } else {
                    Expr::Or(subs)
                });
            }
            op if op.starts_with('$') => {
                return Err(fault(&p, format!("Unknown or misplaced operator {op}")));
            }
            _ => {
                let field = resolve(k, scope).map_err(|m| fault(&p, m))?;
                let conds = parse_conds(v, &field, scope, &p, depth)?;
                parts.push(Expr::Field(field, conds));
            }
        }
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Expr::And(parts)
    })
}

/// Resolves a dot path of defined properties to the stored path and its type.
fn resolve(path: &str, scope: Scope) -> std::result::Result<Field, String> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("{path} is not a valid path"));
    }
    if segs.iter().any(|s| s.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!("{path}: array indexes are not allowed in paths"));
    }
    let first = segs[0];
    let rest = &segs[1..];
    let env = |ty: FieldType, extra_ok: bool| -> std::result::Result<Field, String> {
        if !(rest.is_empty() || extra_ok && rest == ["_id"]) {
            return Err(format!("{path} is not a valid path"));
        }
        Ok(Field {
            parts: vec![first.to_string()],
            ty,
            array: false,
            terminal_array: false,
        })
    };
    if scope.envelope {
        match first {
            "_id" => return env(FieldType::ObjectId, false),
            "created" | "updated" => return env(FieldType::Date, false),
            "creator" | "owner" => return env(FieldType::ObjectId, true),
            _ => {}
        }
    } else if scope.element_id && first == "_id" {
        return env(FieldType::ObjectId, false);
    }
    let p = scope
        .props
        .iter()
        .find(|p| p.name == first)
        .ok_or_else(|| format!("Unknown property {first}"))?;
    walk(p, rest, vec![first.to_string()], p.array, path)
}

fn walk(
    p: &PropDef,
    rest: &[&str],
    mut parts: Vec<String>,
    array: bool,
    path: &str,
) -> std::result::Result<Field, String> {
    let leaf = |ty: FieldType, parts: Vec<String>| Field {
        parts,
        ty,
        array,
        terminal_array: p.array,
    };
    match p.ty {
        PropType::List => Err(format!("{} is a List and cannot be queried", p.name)),
        PropType::Reference => match rest {
            [] | ["_id"] => Ok(leaf(FieldType::ObjectId, parts)),
            _ => Err(format!("{path}: only _id of a reference can be queried")),
        },
        PropType::Document => match rest.split_first() {
            None => Ok(leaf(FieldType::Document, parts)),
            Some((next, more)) => {
                if p.array && *next == "_id" && more.is_empty() {
                    parts.push("_id".into());
                    return Ok(Field {
                        parts,
                        ty: FieldType::ObjectId,
                        array: true,
                        terminal_array: false,
                    });
                }
                let sp = p
                    .prop(next)
                    .ok_or_else(|| format!("Unknown property {next} of {}", p.name))?;
                parts.push(next.to_string());
                walk(sp, more, parts, array || sp.array, path)
            }
        },
        _ if !rest.is_empty() => Err(format!("{path}: {} has no sub-properties", p.name)),
        PropType::String => Ok(leaf(FieldType::String, parts)),
        PropType::Number => Ok(leaf(FieldType::Number, parts)),
        PropType::Boolean => Ok(leaf(FieldType::Boolean, parts)),
        PropType::Date => Ok(leaf(FieldType::Date, parts)),
        PropType::ObjectId => Ok(leaf(FieldType::ObjectId, parts)),
        PropType::File => Ok(leaf(FieldType::File, parts)),
        PropType::Any => Ok(leaf(FieldType::Any, parts)),
    }
}

/// Casts a literal to the field's type; `null` stays null.
pub fn cast(ty: FieldType, v: &Value) -> Option<Value> {
    match (ty, v) {
        (_, Value::Null) => Some(Value::Null),
        (_, Value::Array(_) | Value::Object(_)) => None,
        (FieldType::String, Value::String(_)) => Some(v.clone()),
        (FieldType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (FieldType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (FieldType::Number, Value::Number(_)) => Some(v.clone()),
        (FieldType::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        (FieldType::Boolean, Value::Bool(_)) => Some(v.clone()),
        (FieldType::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Some(Value::Bool(s == "true"))
        }
        (FieldType::Date, _) => parse_date(v).map(Value::String),
        (FieldType::ObjectId, Value::String(s)) => {
            ObjectId::parse(&s.to_ascii_lowercase()).map(|o| Value::String(o.to_hex()))
        }
        (FieldType::Any, _) => Some(v.clone()),
        _ => None,
    }
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String => "String",
        FieldType::Number => "Number",
        FieldType::Boolean => "Boolean",
        FieldType::Date => "Date",
        FieldType::ObjectId => "ObjectId",
        FieldType::Document => "Document",
        FieldType::File => "File",
        FieldType::Any => "Any",
    }
}

fn lit(field: &Field, v: &Value, p: &str) -> Result<Value> {
    if v.is_array() {
        return Err(fault(p, "Array values are not allowed here"));
    }
    if v.is_object() {
        return Err(fault(
            p,
            "Object values are not allowed here; use dot paths",
        ));
    }
    if matches!(field.ty, FieldType::Document | FieldType::File) && !v.is_null() {
        return Err(fault(
            p,
            format!("A {} can only be compared with null", type_name(field.ty)),
        ));
    }
    cast(field.ty, v)
        .ok_or_else(|| fault(p, format!("{v} cannot be cast to {}", type_name(field.ty))))
}

/// `/pattern/flags` with flags from `imsx`, 1–255 characters.
pub fn parse_regex(s: &str) -> std::result::Result<Regex, String> {
    if s.is_empty() || s.chars().count() > 255 {
        return Err("A regex is 1 to 255 characters".into());
    }
    let body = s
        .strip_prefix('/')
        .ok_or("A regex is written /pattern/flags")?;
    let end = body.rfind('/').ok_or("A regex is written /pattern/flags")?;
    let (pat, flags) = (&body[..end], &body[end + 1..]);
    if pat.is_empty() {
        return Err("A regex pattern must not be empty".into());
    }
    let mut b = regex::RegexBuilder::new(pat);
    for f in flags.chars() {
        match f {
            'i' => b.case_insensitive(true),
            'm' => b.multi_line(true),
            's' => b.dot_matches_new_line(true),
            'x' => b.ignore_whitespace(true),
            _ => return Err(format!("Unknown regex flag {f}")),
        };
    }
    b.size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| format!("Invalid regex: {e}"))
}

fn regex_for(field: &Field, v: &Value, p: &str) -> Result<Regex> {
    if !matches!(field.ty, FieldType::String | FieldType::Any) {
        return Err(fault(p, "$regex applies to String properties only"));
    }
    let Value::String(s) = v else {
        return Err(fault(p, "$regex takes a string \"/pattern/flags\""));
    };
    parse_regex(s).map_err(|m| fault(p, m))
}

fn list<'a>(v: &'a Value, p: &str, op: &str) -> Result<&'a Vec<Value>> {
    match v {
        Value::Array(items) if items.len() <= MAX_LIST => Ok(items),
        Value::Array(_) => Err(fault(p, format!("{op} takes at most {MAX_LIST} values"))),
        _ => Err(fault(p, format!("{op} takes an array"))),
    }
}

fn parse_conds(v: &Value, field: &Field, scope: Scope, p: &str, depth: usize) -> Result<Vec<Cond>> {
    match v {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) || m.is_empty() => {
            if m.is_empty() {
                return Err(fault(p, "An empty condition matches nothing useful"));
            }
            let mut out = Vec::with_capacity(m.len());
            for (op, arg) in m {
                let op_p = format!("{p}.{op}");
                out.push(parse_op(op, arg, field, scope, &op_p, depth)?);
            }
            Ok(out)
        }
        _ => Ok(vec![Cond::Eq(lit(field, v, p)?)]),
    }
}

fn parse_op(
    op: &str,
    arg: &Value,
    field: &Field,
    scope: Scope,
    p: &str,
    depth: usize,
) -> Result<Cond> {
    let need_array = |what: &str| -> Result<()> {
        if field.terminal_array || field.ty == FieldType::Any {
            Ok(())
        } else {
            Err(fault(p, format!("{what} applies to array properties only")))
        }
    };
    Ok(match op {
        "$eq" => Cond::Eq(lit(field, arg, p)?),
        "$ne" => Cond::Ne(lit(field, arg, p)?),
        "$gt" | "$gte" | "$lt" | "$lte" => {
            if matches!(field.ty, FieldType::Document | FieldType::File) {
                return Err(fault(
                    p,
                    format!("{op} does not apply to {}", type_name(field.ty)),
                ));
            }
            let v = lit(field, arg, p)?;
            if v.is_null() {
                return Err(fault(p, format!("{op} needs a value, not null")));
            }
            let c = match op {
                "$gt" => CmpOp::Gt,
                "$gte" => CmpOp::Gte,
                "$lt" => CmpOp::Lt,
                _ => CmpOp::Lte,
            };
            Cond::Cmp(c, v)
        }
        "$in" | "$nin" => {
            let items = list(arg, p, op)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let ip = format!("{p}[{i}]");
                match it {
                    Value::Object(m) if m.len() == 1 && m.contains_key("$regex") => {
                        out.push(InItem::Regex(regex_for(
                            field,
                            &m["$regex"],
                            &format!("{ip}.$regex"),
                        )?));
                    }
                    _ => out.push(InItem::Lit(lit(field, it, &ip)?)),
                }
            }
            if op == "$in" {
                Cond::In(out)
            } else {
                Cond::Nin(out)
            }
        }
        "$exists" => match arg {
            Value::Bool(b) => Cond::Exists(*b),
            _ => return Err(fault(p, "$exists takes true or false")),
        },
        "$regex" => Cond::Regex(regex_for(field, arg, p)?),
        "$size" => {
            need_array("$size")?;
            match arg.as_u64() {
                Some(n) => Cond::Size(n),
                None => return Err(fault(p, "$size takes an integer ≥ 0")),
            }
        }
        // on a scalar, $all is equality with each item (MongoDB)
        "$all" => {
            let items = list(arg, p, op)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, it) in items.iter().enumerate() {
                let ip = format!("{p}[{i}]");
                match it {
                    Value::Object(m) if m.len() == 1 && m.contains_key("$elemMatch") => {
                        out.push(AllItem::ElemMatch(Box::new(elem_match(
                            &m["$elemMatch"],
                            field,
                            scope,
                            &format!("{ip}.$elemMatch"),
                            depth,
                        )?)));
                    }
                    _ => out.push(AllItem::Lit(lit(field, it, &ip)?)),
                }
            }
            Cond::All(out)
        }
        "$elemMatch" => {
            need_array("$elemMatch")?;
            Cond::ElemMatch(Box::new(elem_match(arg, field, scope, p, depth)?))
        }
        "$type" => Cond::Type(match arg.as_str() {
            Some("string") => TypeName::String,
            Some("number") => TypeName::Number,
            Some("bool") => TypeName::Bool,
            Some("date") => TypeName::Date,
            Some("objectId") => TypeName::ObjectId,
            Some("object") => TypeName::Object,
            Some("array") => TypeName::Array,
            Some("null") => TypeName::Null,
            _ => {
                return Err(fault(
                    p,
                    "$type takes string, number, bool, date, objectId, object, array or null",
                ));
            }
        }),
        "$and" | "$or" => {
            return Err(fault(
                p,
                format!("{op} is only allowed at the top level or inside $and, $or and $elemMatch"),
            ));
        }
        _ => return Err(fault(p, format!("Invalid operator {op}"))),
    })
}

/// `$elemMatch`: a sub-query over Document-array elements, or operator conditions over the
/// values of a primitive array.
fn elem_match(arg: &Value, field: &Field, scope: Scope, p: &str, depth: usize) -> Result<Expr> {
    if depth + 1 > MAX_DEPTH {
        return Err(fault(
            p,
            format!("The query is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Value::Object(m) = arg else {
        return Err(fault(p, "$elemMatch takes a query object"));
    };
    if field.ty == FieldType::Document {
        let def_props = element_props(field, scope)
            .ok_or_else(|| fault(p, "$elemMatch: unknown element type"))?;
        let inner = Scope {
            props: def_props,
            envelope: false,
            element_id: true,
        };
        return parse_query(m, inner, p, depth + 1);
    }
    if m.is_empty()
        || !m.keys().all(|k| k.starts_with('$'))
        || m.contains_key("$and")
        || m.contains_key("$or")
    {
        return Err(fault(
            p,
            "$elemMatch over values takes operators only, e.g. {\"$gt\": 5}",
        ));
    }
    let elem = Field {
        parts: Vec::new(),
        ty: field.ty,
        array: false,
        terminal_array: false,
    };
    let mut conds = Vec::new();
    for (op, a) in m {
        conds.push(parse_op(
            op,
            a,
            &elem,
            scope,
            &format!("{p}.{op}"),
            depth + 1,
        )?);
    }
    Ok(Expr::Value(conds))
}

/// The property definitions of the Document array a field path names.
fn element_props<'a>(field: &Field, scope: Scope<'a>) -> Option<&'a [PropDef]> {
    let mut props = scope.props;
    let mut found: Option<&PropDef> = None;
    for part in &field.parts {
        let p = props.iter().find(|p| &p.name == part)?;
        props = &p.properties;
        found = Some(p);
    }
    found
        .filter(|p| p.ty == PropType::Document)
        .map(|p| p.properties.as_slice())
}

/// A sort key: a resolvable field and its direction.
#[derive(Debug, Clone)]
pub struct SortKey {
    pub field: Field,
    pub descending: bool,
}

/// `sort` as `{"c_n": 1, "_id": -1}` or `c_n` / `-c_n`; at most 5 keys.
pub fn parse_sort(src: &str, def: &ObjectDef) -> Result<Vec<SortKey>> {
    let scope = Scope {
        props: &def.properties,
        envelope: true,
        element_id: false,
    };
    let bad = |p: &str, m: String| Fault::invalid("sort", m).at(p);
    let pairs: Vec<(String, bool)> = if src.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(src)
            .map_err(|e| bad("sort", format!("sort is not valid JSON: {e}")))?;
        let Value::Object(m) = v else {
            unreachable!("starts with a brace")
        };
        let mut out = Vec::new();
        for (k, d) in m {
            match d.as_i64() {
                Some(1) => out.push((k, false)),
                Some(-1) => out.push((k, true)),
                _ => {
                    return Err(bad(
                        &format!("sort.{k}"),
                        "A sort direction is 1 or -1".into(),
                    ));
                }
            }
        }
        out
    } else {
        src.split(',')
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('-') {
                Some(f) => (f.to_string(), true),
                None => (s.to_string(), false),
            })
            .collect()
    };
    if pairs.is_empty() || pairs.len() > 5 {
        return Err(bad("sort", "sort takes 1 to 5 fields".into()));
    }
    pairs
        .into_iter()
        .map(|(k, descending)| {
            let field = resolve(&k, scope).map_err(|m| bad(&format!("sort.{k}"), m))?;
            if matches!(field.ty, FieldType::Document | FieldType::File) || field.array {
                return Err(bad(
                    &format!("sort.{k}"),
                    format!("{k} cannot be sorted on"),
                ));
            }
            Ok(SortKey { field, descending })
        })
        .collect()
}

/// Parses a `where` over the elements of a Document array (`prefix` exports): paths are
/// relative to the element, which has an `_id` but no envelope.
pub fn parse_where_elements(src: &str, props: &[PropDef]) -> Result<Expr> {
    if src.chars().count() > MAX_WHERE_CHARS {
        return Err(fault(
            "where",
            format!("where is longer than {MAX_WHERE_CHARS} characters"),
        ));
    }
    let v: Value = serde_json::from_str(src)
        .map_err(|e| fault("where", format!("where is not valid JSON: {e}")))?;
    let scope = Scope {
        props,
        envelope: false,
        element_id: true,
    };
    match &v {
        Value::Object(m) => parse_query(m, scope, "where", 1),
        _ => Err(fault("where", "where must be a JSON object")),
    }
}
