//! The typed form of a `where` query, validated against an object definition.

use regex::Regex;
use serde_json::Value;

/// What a field path resolves to in the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Number,
    Boolean,
    Date,
    ObjectId,
    /// A Document (or its array): only structural operators apply.
    Document,
    File,
    Any,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// Path segments into the stored document (References resolve to their id string).
    pub parts: Vec<String>,
    pub ty: FieldType,
    /// True when the path crosses or ends in an array.
    pub array: bool,
    /// True when the last segment itself is an array property.
    pub terminal_array: bool,
}

#[derive(Debug, Clone)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Field(Field, Vec<Cond>),
    /// Conditions on the element itself, inside `$elemMatch` over primitive arrays.
    Value(Vec<Cond>),
}

#[derive(Debug, Clone)]
pub enum InItem {
    Lit(Value),
    Regex(Regex),
}

#[derive(Debug, Clone)]
pub enum AllItem {
    Lit(Value),
    ElemMatch(Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeName {
    String,
    Number,
    Bool,
    Date,
    ObjectId,
    Object,
    Array,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
pub enum Cond {
    Eq(Value),
    Ne(Value),
    Cmp(CmpOp, Value),
    In(Vec<InItem>),
    Nin(Vec<InItem>),
    Exists(bool),
    Regex(Regex),
    Size(u64),
    All(Vec<AllItem>),
    ElemMatch(Box<Expr>),
    Type(TypeName),
}
