//! Tests of the `where` query engine (SPEC §5): parsing and validation (`query::parse`) and
//! matching (`query::matcher`) with MongoDB's semantics, over a fixture object that has every
//! queryable property type and documents full of edge cases.
//!
//! - `where_cases_match_exactly_the_expected_documents`: a table of queries, each with the
//!   exact set of fixture documents it must match.
//! - `invalid_queries_fault_at_the_exact_path`: a table of invalid queries, each with the exact
//!   `path` of its 400 `cortex.invalidArgument.query` fault.
//! - property tests: the parser never panics, `$and`/`$or` are intersection/union, `$nin`/`$ne`
//!   are the complements of `$in`/`$eq`.
//! - `#[ignore = "BUG: ..."]` tests pin behaviour that differs from the contract.

use exportd::fault::{Fault, Result as FaultResult};
use exportd::model::document::{RefCheck, StoredDoc, new_doc};
use exportd::model::ids::ObjectId;
use exportd::model::schema::{ObjectDef, parse_definition};
use exportd::query::ast::Expr;
use exportd::query::matcher::matches;
use exportd::query::parse::{parse_value, parse_where};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// fixture
// ---------------------------------------------------------------------------------------------

/// Every Reference target exists.
struct AnyRef;

impl RefCheck for AnyRef {
    fn exists(&mut self, _object: &str, _id: ObjectId) -> FaultResult<bool> {
        Ok(true)
    }
}

const OA: &str = "aa0000000000000000000001";
const OB: &str = "bb0000000000000000000002";
const OID0: &str = "000000000000000000000000";
const OID1: &str = "0123456789abcdef01234567";
const OID2: &str = "fedcba9876543210fedcba98";

/// `_id` of fixture document `n` (d01 … d14); ids sort in document order.
fn did(n: u32) -> String {
    format!("65{n:022}")
}

/// `_id` of element `k` of the `c_items` of document `n`.
fn eid(n: u32, k: u32) -> String {
    format!("e{n:021}{k:02}")
}

/// `_id` of `c_other` document `n` (the targets of `c_ref`).
fn rid(n: u32) -> String {
    format!("5f{n:022}")
}

fn oid(s: &str) -> ObjectId {
    ObjectId::parse(s).expect("fixture ids are valid")
}

/// Placeholders usable in the query tables, replaced by the ids above.
fn tokens() -> &'static [(String, String)] {
    static T: OnceLock<Vec<(String, String)>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = Vec::new();
        for n in 1..=14 {
            t.push((format!("@D{n:02}"), did(n)));
        }
        for (n, k, tag) in [
            (1, 1, "01a"),
            (1, 2, "01b"),
            (2, 1, "02a"),
            (6, 1, "06a"),
            (6, 2, "06b"),
            (8, 1, "08a"),
            (8, 2, "08b"),
            (10, 1, "10a"),
            (12, 1, "12a"),
            (12, 2, "12b"),
        ] {
            t.push((format!("@E{tag}"), eid(n, k)));
        }
        for n in 1..=3 {
            t.push((format!("@R{n}"), rid(n)));
        }
        for (k, v) in [
            ("@OA", OA),
            ("@OB", OB),
            ("@OID0", OID0),
            ("@OID1", OID1),
            ("@OID2", OID2),
        ] {
            t.push((k.to_string(), v.to_string()));
        }
        t.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        t
    })
}

fn expand(q: &str) -> String {
    let mut s = q.to_string();
    for (k, v) in tokens() {
        s = s.replace(k.as_str(), v);
    }
    s
}

struct Fixture {
    def: ObjectDef,
    docs: Vec<(&'static str, StoredDoc)>,
}

impl Fixture {
    fn labels(&self) -> BTreeSet<&'static str> {
        self.docs.iter().map(|(l, _)| *l).collect()
    }

    fn matching(&self, e: &Expr) -> BTreeSet<&'static str> {
        self.docs
            .iter()
            .filter(|(_, d)| matches(e, d))
            .map(|(l, _)| *l)
            .collect()
    }

    /// Parses (placeholders expanded) and matches; panics with the query on a parse fault.
    fn run(&self, q: &str) -> BTreeSet<&'static str> {
        let q = expand(q);
        match parse_where(&q, &self.def) {
            Ok(e) => self.matching(&e),
            Err(f) => panic!("{q}: unexpected fault {f}"),
        }
    }

    fn run_value(&self, v: &Value) -> BTreeSet<&'static str> {
        match parse_value(v, &self.def) {
            Ok(e) => self.matching(&e),
            Err(f) => panic!("{v}: unexpected fault {f}"),
        }
    }

    fn doc(&self, label: &str) -> &StoredDoc {
        &self.docs.iter().find(|(l, _)| *l == label).unwrap().1
    }
}

fn definitions() -> (ObjectDef, ObjectDef) {
    let other = parse_definition(
        json!({"name": "c_other", "properties": [{"name": "c_label", "type": "String"}]}),
        &[],
    )
    .expect("c_other");
    let def = parse_definition(
        json!({
            "name": "c_thing",
            "properties": [
                {"name": "c_str", "type": "String"},
                {"name": "c_num", "type": "Number"},
                {"name": "c_bool", "type": "Boolean"},
                {"name": "c_date", "type": "Date"},
                {"name": "c_oid", "type": "ObjectId"},
                {"name": "c_ref", "type": "Reference", "sourceObject": "c_other"},
                {"name": "c_parent", "type": "Reference", "sourceObject": "c_thing"},
                {"name": "c_children", "type": "List", "sourceObject": "c_thing",
                 "linkedProperty": "c_parent"},
                {"name": "c_tags", "type": "String", "array": true},
                {"name": "c_nums", "type": "Number", "array": true},
                {"name": "c_doc", "type": "Document", "properties": [
                    {"name": "c_sub", "type": "String"},
                    {"name": "c_n", "type": "Number"},
                    {"name": "c_when", "type": "Date"},
                    {"name": "c_flag", "type": "Boolean"},
                    {"name": "c_list", "type": "String", "array": true}
                ]},
                {"name": "c_items", "type": "Document", "array": true, "properties": [
                    {"name": "c_name", "type": "String"},
                    {"name": "c_qty", "type": "Number"},
                    {"name": "c_ref", "type": "Reference", "sourceObject": "c_other"},
                    {"name": "c_tags", "type": "String", "array": true}
                ]},
                {"name": "c_file", "type": "File"},
                {"name": "c_any", "type": "Any"}
            ]
        }),
        std::slice::from_ref(&other),
    )
    .expect("c_thing");
    (other, def)
}

/// A document created through `new_doc`, with a fixed envelope.
fn make_doc(def: &ObjectDef, n: u32, body: Value) -> StoredDoc {
    let mut d = new_doc(def, body.clone(), oid(OA), &mut AnyRef)
        .unwrap_or_else(|f| panic!("fixture d{n:02} {body}: {f}"));
    d.id = oid(&did(n));
    d.created = match n {
        13 => "2024-12-31T23:59:59.999Z".to_string(),
        14 => "2026-02-01T00:00:00.000Z".to_string(),
        n => format!("2025-{n:02}-01T00:00:00.000Z"),
    };
    d.updated = match n {
        2 => Some("2025-03-01T00:00:00.000Z".to_string()),
        14 => Some("2026-03-01T00:00:00.000Z".to_string()),
        _ => None,
    };
    d.creator = oid(if n == 14 { OB } else { OA });
    d.owner = oid(if matches!(n, 11 | 12 | 14) { OB } else { OA });
    d
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let (_, def) = definitions();
    let d = |n: u32, body: Value| make_doc(&def, n, body);
    let mut docs = vec![
        (
            "d01",
            d(
                1,
                json!({
                    "c_str": "apple", "c_num": 10, "c_bool": true,
                    "c_date": "2026-01-01T00:00:00.000Z", "c_oid": OID1, "c_ref": rid(1),
                    "c_tags": ["red", "green"], "c_nums": [1, 5, 9],
                    "c_doc": {"c_sub": "x", "c_n": 1, "c_when": "2026-03-01"},
                    "c_items": [
                        {"_id": eid(1, 1), "c_name": "bolt", "c_qty": 5, "c_ref": rid(1),
                         "c_tags": ["m"]},
                        {"_id": eid(1, 2), "c_name": "nut", "c_qty": 10}
                    ],
                    "c_any": 5
                }),
            ),
        ),
        (
            "d02",
            d(
                2,
                json!({
                    "c_str": "Apple", "c_num": -3.5, "c_bool": false,
                    "c_date": "2025-12-31T23:59:59.999Z", "c_oid": OID2, "c_ref": rid(2),
                    "c_parent": did(1), "c_tags": ["blue"], "c_nums": [6],
                    "c_doc": {"c_sub": "y", "c_n": -2},
                    "c_items": [{"_id": eid(2, 1), "c_name": "bolt", "c_qty": 1, "c_ref": rid(2)}],
                    "c_any": "5"
                }),
            ),
        ),
        (
            "d03",
            d(
                3,
                json!({
                    "c_str": "banana", "c_num": 0, "c_bool": true,
                    "c_date": "2024-02-29T12:00:00Z", "c_tags": [], "c_nums": [], "c_items": []
                }),
            ),
        ),
        ("d04", d(4, json!({}))),
        (
            "d05",
            d(
                5,
                json!({
                    "c_str": "日本語", "c_num": "1e3", "c_bool": "true", "c_date": "1999-12-31",
                    "c_tags": ["red", "red", "blue"], "c_nums": [5.5, -1], "c_any": [5, 7]
                }),
            ),
        ),
        (
            "d06",
            d(
                6,
                json!({
                    "c_str": "Ünïcødé ✓", "c_num": 2.5, "c_date": "2026-06-15T08:30:00.000Z",
                    "c_ref": rid(1), "c_parent": did(1), "c_tags": ["green"], "c_nums": [7, 8],
                    "c_doc": {"c_sub": "Ünï", "c_flag": false},
                    "c_items": [
                        {"_id": eid(6, 1), "c_name": "washer", "c_qty": 7, "c_tags": ["m", "n"]},
                        {"_id": eid(6, 2), "c_name": "nut", "c_qty": 3, "c_ref": rid(3)}
                    ],
                    "c_any": {"k": 1}
                }),
            ),
        ),
        (
            "d07",
            d(
                7,
                json!({
                    "c_str": "line1\nline2", "c_num": 9, "c_bool": false, "c_date": 0,
                    "c_oid": "0123456789ABCDEF01234567", "c_tags": ["Red"], "c_nums": [10],
                    "c_doc": {"c_n": 5, "c_list": ["p", "q"]}, "c_any": true
                }),
            ),
        ),
        (
            "d08",
            d(
                8,
                json!({
                    "c_str": "😀", "c_num": 100, "c_date": "2030-01-01T00:00:00+02:00",
                    "c_ref": rid(3), "c_parent": did(2),
                    "c_items": [
                        {"_id": eid(8, 1), "c_name": "bolt", "c_qty": 20, "c_ref": rid(1),
                         "c_tags": []},
                        {"_id": eid(8, 2), "c_name": "Bolt", "c_qty": 2}
                    ],
                    "c_any": "2026-01-01T00:00:00.000Z"
                }),
            ),
        ),
        (
            "d09",
            d(
                9,
                json!({
                    "c_str": "", "c_num": -100, "c_bool": true,
                    "c_date": "1969-07-20T20:17:00Z", "c_nums": [2, 12], "c_any": 7.25
                }),
            ),
        ),
        (
            "d10",
            d(
                10,
                json!({
                    "c_str": "cherry pie", "c_num": 5, "c_bool": false, "c_date": "2026-01-01",
                    "c_ref": rid(2), "c_tags": ["a b", "c"],
                    "c_items": [{"_id": eid(10, 1), "c_name": "nut", "c_qty": 5, "c_ref": rid(1),
                                 "c_tags": ["n"]}],
                    "c_any": ["x", ["y"]]
                }),
            ),
        ),
        (
            "d11",
            d(
                11,
                json!({
                    "c_str": "apple pie", "c_num": 10.0, "c_oid": OID0,
                    "c_doc": {"c_sub": "x", "c_n": 10, "c_when": "2020-05-05"}, "c_nums": [9, 9]
                }),
            ),
        ),
        (
            "d12",
            d(
                12,
                json!({
                    "c_str": "Zebra", "c_num": 42, "c_bool": true,
                    "c_date": "2026-01-01T00:00:00.001Z", "c_parent": did(12), "c_tags": ["red"],
                    "c_items": [{"_id": eid(12, 1), "c_name": "screw"},
                                {"_id": eid(12, 2), "c_qty": 0}]
                }),
            ),
        ),
        ("d13", d(13, json!({}))),
        ("d14", d(14, json!({"c_str": "kiwi", "c_num": 7}))),
    ];
    for (label, doc) in &mut docs {
        match *label {
            // explicit nulls: only possible in Any, or by writing the stored form directly
            "d03" => {
                doc.props.insert("c_any".into(), Value::Null);
            }
            "d06" => {
                doc.props.insert(
                    "c_file".into(),
                    json!({"name": "content", "mime": "text/plain", "filename": "a.txt",
                           "size": 3, "ETag": "ab", "state": 2, "blob": eid(99, 1)}),
                );
            }
            "d13" => {
                let v = json!({
                    "c_str": null, "c_num": null, "c_bool": null,
                    "c_tags": ["red", null], "c_doc": {"c_sub": null}
                });
                doc.props = v.as_object().unwrap().clone();
            }
            _ => {}
        }
    }
    Fixture { def, docs }
}

#[test]
fn fixture_is_stored_in_the_expected_form() {
    let fx = fixture();
    assert_eq!(fx.docs.len(), 14);
    let p = |l: &str, k: &str| fx.doc(l).props.get(k).cloned().unwrap_or(Value::Null);
    assert_eq!(p("d01", "c_date"), json!("2026-01-01T00:00:00.000Z"));
    assert_eq!(p("d01", "c_ref"), json!(rid(1)));
    assert_eq!(
        p("d01", "c_doc")["c_when"],
        json!("2026-03-01T00:00:00.000Z")
    );
    assert_eq!(p("d01", "c_items")[1]["_id"], json!(eid(1, 2)));
    assert_eq!(p("d03", "c_date"), json!("2024-02-29T12:00:00.000Z"));
    assert_eq!(p("d05", "c_num"), json!(1000));
    assert_eq!(p("d05", "c_bool"), json!(true));
    assert_eq!(p("d05", "c_date"), json!("1999-12-31T00:00:00.000Z"));
    assert_eq!(p("d07", "c_date"), json!("1970-01-01T00:00:00.000Z"));
    assert_eq!(p("d07", "c_oid"), json!(OID1));
    assert_eq!(p("d08", "c_date"), json!("2029-12-31T22:00:00.000Z"));
    assert_eq!(p("d09", "c_date"), json!("1969-07-20T20:17:00.000Z"));
    assert_eq!(p("d10", "c_date"), json!("2026-01-01T00:00:00.000Z"));
    assert!(p("d11", "c_num").is_f64());
    assert_eq!(
        p("d12", "c_items")[1],
        json!({"_id": eid(12, 2), "c_qty": 0})
    );
    assert!(fx.doc("d03").props.contains_key("c_any"));
    assert!(!fx.doc("d04").props.contains_key("c_any"));
    assert_eq!(fx.doc("d13").props["c_tags"], json!(["red", null]));
    assert_eq!(fx.doc("d14").owner.to_hex(), OB);
    assert_eq!(
        expand("@D01 @E12b @R3"),
        format!("{} {} {}", did(1), eid(12, 2), rid(3))
    );
    assert_eq!(did(14).len(), 24);
    assert_eq!(eid(10, 1).len(), 24);
}

// ---------------------------------------------------------------------------------------------
// matching: (where, exactly the documents it matches)
// ---------------------------------------------------------------------------------------------
//
// Fixture summary (missing = property absent; null = stored null):
//   c_str   d01 apple · d02 Apple · d03 banana · d05 日本語 · d06 "Ünïcødé ✓" · d07 "line1\nline2"
//           · d08 😀 · d09 "" · d10 "cherry pie" · d11 "apple pie" · d12 Zebra · d13 null · d14 kiwi
//   c_num   d01 10 · d02 -3.5 · d03 0 · d05 1000 · d06 2.5 · d07 9 · d08 100 · d09 -100 · d10 5
//           · d11 10.0 · d12 42 · d13 null · d14 7
//   c_bool  true d01 d03 d05 d09 d12 · false d02 d07 d10 · null d13
//   c_date  d01/d10 2026-01-01 · d02 2025-12-31T23:59:59.999 · d03 2024-02-29T12 · d05 1999-12-31
//           · d06 2026-06-15 · d07 1970-01-01 · d08 2029-12-31T22 · d09 1969-07-20
//           · d12 2026-01-01T00:00:00.001
//   c_oid   d01/d07 OID1 · d02 OID2 · d11 OID0
//   c_ref   d01/d06 R1 · d02/d10 R2 · d08 R3;  c_parent d02/d06 D01 · d08 D02 · d12 D12
//   c_tags  d01 [red green] · d02 [blue] · d03 [] · d05 [red red blue] · d06 [green] · d07 [Red]
//           · d10 ["a b" c] · d12 [red] · d13 [red null]
//   c_nums  d01 [1 5 9] · d02 [6] · d03 [] · d05 [5.5 -1] · d06 [7 8] · d07 [10] · d09 [2 12]
//           · d11 [9 9]
//   c_doc   d01 {x 1 2026-03-01} · d02 {y -2} · d06 {Ünï flag:false} · d07 {n:5 list:[p q]}
//           · d11 {x 10 2020-05-05} · d13 {c_sub:null}
//   c_items d01 [bolt 5 R1 [m], nut 10] · d02 [bolt 1 R2] · d03 [] · d06 [washer 7 [m n], nut 3 R3]
//           · d08 [bolt 20 R1 [], Bolt 2] · d10 [nut 5 R1 [n]] · d12 [screw, qty 0]
//   c_file  d06
//   c_any   d01 5 · d02 "5" · d03 null · d05 [5 7] · d06 {k:1} · d07 true · d08 "2026-01-01T…Z"
//           · d09 7.25 · d10 ["x" ["y"]]
//   created d01..d12 2025-MM-01 · d13 2024-12-31 · d14 2026-02-01; updated d02, d14;
//   owner   OB: d11 d12 d14, else OA; creator OB: d14, else OA

const CASES: &[(&str, &[&str])] = &[
    // --- everything -------------------------------------------------------------------------
    (
        r#"{}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    (
        r#"{"$and":[{}]}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    // --- $eq on primitives -------------------------------------------------------------------
    (r#"{"c_str":"apple"}"#, &["d01"]),
    (r#"{"c_str":{"$eq":"apple"}}"#, &["d01"]),
    (r#"{"c_str":"APPLE"}"#, &[]),
    (r#"{"c_str":""}"#, &["d09"]),
    (r#"{"c_str":"日本語"}"#, &["d05"]),
    (r#"{"c_str":"😀"}"#, &["d08"]),
    (r#"{"c_str":"\ud83d\ude00"}"#, &["d08"]),
    (r#"{"c_str":"line1\nline2"}"#, &["d07"]),
    (r#"{"c_str":"Ünïcødé ✓"}"#, &["d06"]),
    (r#"{"c_num":10}"#, &["d01", "d11"]),
    (r#"{"c_num":10.0}"#, &["d01", "d11"]),
    (r#"{"c_num":"10"}"#, &["d01", "d11"]),
    (r#"{"c_num":" 1e3 "}"#, &["d05"]),
    (r#"{"c_num":1000}"#, &["d05"]),
    (r#"{"c_num":-3.5}"#, &["d02"]),
    (r#"{"c_num":"-3.50"}"#, &["d02"]),
    (r#"{"c_num":0}"#, &["d03"]),
    (r#"{"c_num":"-0"}"#, &["d03"]),
    (r#"{"c_bool":true}"#, &["d01", "d03", "d05", "d09", "d12"]),
    (r#"{"c_bool":"true"}"#, &["d01", "d03", "d05", "d09", "d12"]),
    (r#"{"c_bool":"false"}"#, &["d02", "d07", "d10"]),
    (
        r#"{"c_bool":{"$ne":true}}"#,
        &[
            "d02", "d04", "d06", "d07", "d08", "d10", "d11", "d13", "d14",
        ],
    ),
    (r#"{"c_date":"2026-01-01T00:00:00.000Z"}"#, &["d01", "d10"]),
    (r#"{"c_date":"2026-01-01"}"#, &["d01", "d10"]),
    (r#"{"c_date":"2026-01-01T01:00:00+01:00"}"#, &["d01", "d10"]),
    (r#"{"c_date":"2026-01-01T00:00:00"}"#, &["d01", "d10"]),
    (r#"{"c_date":1767225600000}"#, &["d01", "d10"]),
    (r#"{"c_date":0}"#, &["d07"]),
    (r#"{"c_date":"2024-02-29T12:00:00.000Z"}"#, &["d03"]),
    (r#"{"c_oid":"@OID1"}"#, &["d01", "d07"]),
    (r#"{"c_oid":"0123456789ABCDEF01234567"}"#, &["d01", "d07"]),
    (r#"{"c_oid":{"$eq":"@OID0"}}"#, &["d11"]),
    // --- references by _id --------------------------------------------------------------------
    (r#"{"c_ref":"@R1"}"#, &["d01", "d06"]),
    (r#"{"c_ref._id":"@R1"}"#, &["d01", "d06"]),
    (
        r#"{"c_ref._id":{"$ne":"@R1"}}"#,
        &[
            "d02", "d03", "d04", "d05", "d07", "d08", "d09", "d10", "d11", "d12", "d13", "d14",
        ],
    ),
    (r#"{"c_ref":{"$in":["@R2","@R3"]}}"#, &["d02", "d08", "d10"]),
    (r#"{"c_ref":{"$gt":"@R1"}}"#, &["d02", "d08", "d10"]),
    (
        r#"{"c_ref":{"$type":"objectId"}}"#,
        &["d01", "d02", "d06", "d08", "d10"],
    ),
    (r#"{"c_parent":"@D01"}"#, &["d02", "d06"]),
    (r#"{"c_parent._id":"@D12"}"#, &["d12"]),
    (
        r#"{"c_parent._id":{"$exists":false}}"#,
        &[
            "d01", "d03", "d04", "d05", "d07", "d09", "d10", "d11", "d13", "d14",
        ],
    ),
    // --- arrays match element-wise ------------------------------------------------------------
    (r#"{"c_tags":"red"}"#, &["d01", "d05", "d12", "d13"]),
    (r#"{"c_tags":{"$eq":"red"}}"#, &["d01", "d05", "d12", "d13"]),
    (r#"{"c_tags":"Red"}"#, &["d07"]),
    (r#"{"c_tags":"a b"}"#, &["d10"]),
    (
        r#"{"c_tags":{"$ne":"red"}}"#,
        &[
            "d02", "d03", "d04", "d06", "d07", "d08", "d09", "d10", "d11", "d14",
        ],
    ),
    (r#"{"c_nums":9}"#, &["d01", "d11"]),
    (r#"{"c_nums":"9"}"#, &["d01", "d11"]),
    (
        r#"{"c_nums":{"$ne":9}}"#,
        &[
            "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d12", "d13", "d14",
        ],
    ),
    (r#"{"c_doc.c_list":"q"}"#, &["d07"]),
    (
        r#"{"c_doc.c_list":{"$ne":"p"}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d08", "d09", "d10", "d11", "d12", "d13",
            "d14",
        ],
    ),
    // --- null vs missing ------------------------------------------------------------------------
    (r#"{"c_str":null}"#, &["d04", "d13"]),
    (r#"{"c_str":{"$eq":null}}"#, &["d04", "d13"]),
    (
        r#"{"c_str":{"$ne":null}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d14",
        ],
    ),
    (
        r#"{"c_str":{"$exists":true}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13",
            "d14",
        ],
    ),
    (r#"{"c_str":{"$exists":false}}"#, &["d04"]),
    (
        r#"{"c_bool":null}"#,
        &["d04", "d06", "d08", "d11", "d13", "d14"],
    ),
    (
        r#"{"c_any":null}"#,
        &["d03", "d04", "d11", "d12", "d13", "d14"],
    ),
    (
        r#"{"c_any":{"$exists":true}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10",
        ],
    ),
    (
        r#"{"c_any":{"$exists":false}}"#,
        &["d04", "d11", "d12", "d13", "d14"],
    ),
    (r#"{"c_any":{"$type":"null"}}"#, &["d03"]),
    (
        r#"{"c_any":{"$ne":null}}"#,
        &["d01", "d02", "d05", "d06", "d07", "d08", "d09", "d10"],
    ),
    (
        r#"{"c_tags":null}"#,
        &["d04", "d08", "d09", "d11", "d13", "d14"],
    ),
    (r#"{"c_tags":{"$elemMatch":{"$eq":null}}}"#, &["d13"]),
    (
        r#"{"c_tags":{"$exists":true}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d10", "d12", "d13",
        ],
    ),
    (
        r#"{"c_doc.c_sub":null}"#,
        &[
            "d03", "d04", "d05", "d07", "d08", "d09", "d10", "d12", "d13", "d14",
        ],
    ),
    (
        r#"{"c_doc.c_sub":{"$exists":true}}"#,
        &["d01", "d02", "d06", "d11", "d13"],
    ),
    (
        r#"{"c_doc.c_sub":{"$ne":null}}"#,
        &["d01", "d02", "d06", "d11"],
    ),
    (
        r#"{"c_doc":null}"#,
        &["d03", "d04", "d05", "d08", "d09", "d10", "d12", "d14"],
    ),
    (
        r#"{"c_doc":{"$exists":true}}"#,
        &["d01", "d02", "d06", "d07", "d11", "d13"],
    ),
    (
        r#"{"c_file":null}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d07", "d08", "d09", "d10", "d11", "d12", "d13",
            "d14",
        ],
    ),
    (r#"{"c_file":{"$exists":true}}"#, &["d06"]),
    (r#"{"c_file":{"$ne":null}}"#, &["d06"]),
    (r#"{"c_file":{"$type":"object"}}"#, &["d06"]),
    (
        r#"{"c_items":null}"#,
        &["d04", "d05", "d07", "d09", "d11", "d13", "d14"],
    ),
    (r#"{"c_num":{"$in":[null]}}"#, &["d04", "d13"]),
    (r#"{"c_num":{"$in":[null,42]}}"#, &["d04", "d12", "d13"]),
    (
        r#"{"c_num":{"$nin":[null]}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d14",
        ],
    ),
    (
        r#"{"c_num":{"$nin":[10,0]}}"#,
        &[
            "d02", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d12", "d13", "d14",
        ],
    ),
    (
        r#"{"updated":null}"#,
        &[
            "d01", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13",
        ],
    ),
    (r#"{"updated":{"$exists":true}}"#, &["d02", "d14"]),
    // --- $gt $gte $lt $lte: numbers -----------------------------------------------------------
    (r#"{"c_num":{"$gt":10}}"#, &["d05", "d08", "d12"]),
    (
        r#"{"c_num":{"$gte":10}}"#,
        &["d01", "d05", "d08", "d11", "d12"],
    ),
    (r#"{"c_num":{"$lt":0}}"#, &["d02", "d09"]),
    (r#"{"c_num":{"$lte":0}}"#, &["d02", "d03", "d09"]),
    (
        r#"{"c_num":{"$gt":2,"$lt":10}}"#,
        &["d06", "d07", "d10", "d14"],
    ),
    (
        r#"{"c_num":{"$gte":-3.5,"$lte":2.5}}"#,
        &["d02", "d03", "d06"],
    ),
    (
        r#"{"c_num":{"$gt":"9.5"}}"#,
        &["d01", "d05", "d08", "d11", "d12"],
    ),
    (r#"{"c_num":{"$lt":-1e300}}"#, &[]),
    (
        r#"{"c_num":{"$gt":0,"$ne":10}}"#,
        &["d05", "d06", "d07", "d08", "d10", "d12", "d14"],
    ),
    (r#"{"c_nums":{"$gt":9}}"#, &["d07", "d09"]),
    (
        r#"{"c_nums":{"$gt":5,"$lt":9}}"#,
        &["d01", "d02", "d05", "d06", "d09"],
    ),
    (r#"{"c_nums":{"$lte":-1}}"#, &["d05"]),
    (r#"{"c_doc.c_n":{"$gt":0}}"#, &["d01", "d07", "d11"]),
    (r#"{"c_items.c_qty":{"$gt":15}}"#, &["d08"]),
    (r#"{"c_items.c_qty":{"$lte":0}}"#, &["d12"]),
    // --- comparisons: strings (binary UTF-8 order) --------------------------------------------
    (
        r#"{"c_str":{"$gt":"apple"}}"#,
        &["d03", "d05", "d06", "d07", "d08", "d10", "d11", "d14"],
    ),
    (r#"{"c_str":{"$lt":"B"}}"#, &["d02", "d09"]),
    (r#"{"c_str":{"$gte":"Z","$lt":"a"}}"#, &["d12"]),
    (r#"{"c_str":{"$gt":"z"}}"#, &["d05", "d06", "d08"]),
    (r#"{"c_str":{"$lte":""}}"#, &["d09"]),
    (
        r#"{"c_str":{"$gt":5}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d10", "d11", "d12", "d14",
        ],
    ),
    (
        r#"{"c_tags":{"$gte":"red"}}"#,
        &["d01", "d05", "d12", "d13"],
    ),
    // --- comparisons: dates (ISO strings, date-only and epoch casting) -----------------------
    (
        r#"{"c_date":{"$gte":"2026-01-01"}}"#,
        &["d01", "d06", "d08", "d10", "d12"],
    ),
    (r#"{"c_date":{"$gt":"2026-01-01"}}"#, &["d06", "d08", "d12"]),
    (
        r#"{"c_date":{"$gt":"2026-01-01T00:00:00.000Z"}}"#,
        &["d06", "d08", "d12"],
    ),
    (r#"{"c_date":{"$lt":"1970-01-01"}}"#, &["d09"]),
    (r#"{"c_date":{"$lte":0}}"#, &["d07", "d09"]),
    (
        r#"{"c_date":{"$gte":"2000-01-01","$lt":"2026-01-01T00:00:00.000Z"}}"#,
        &["d02", "d03"],
    ),
    (
        r#"{"c_date":{"$lt":"2025-12-31T23:59:59.999Z"}}"#,
        &["d03", "d05", "d07", "d09"],
    ),
    (r#"{"c_date":{"$gt":"2029-12-31T23:00:00+01:00"}}"#, &[]),
    (
        r#"{"c_date":{"$gte":"2029-12-31T23:00:00+01:00"}}"#,
        &["d08"],
    ),
    (
        r#"{"c_date":{"$in":["1999-12-31","2030-01-01T00:00:00+02:00"]}}"#,
        &["d05", "d08"],
    ),
    (
        r#"{"c_date":{"$nin":["2026-01-01"]}}"#,
        &[
            "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d11", "d12", "d13", "d14",
        ],
    ),
    (r#"{"c_doc.c_when":{"$gt":"2021-01-01"}}"#, &["d01"]),
    (r#"{"c_doc.c_when":"2020-05-05"}"#, &["d11"]),
    (
        r#"{"created":{"$gte":"2025-06-01","$lt":"2025-09-01"}}"#,
        &["d06", "d07", "d08"],
    ),
    (r#"{"created":{"$lt":"2025-01-01"}}"#, &["d13"]),
    (r#"{"created":"2026-02-01"}"#, &["d14"]),
    (r#"{"updated":{"$gt":"2026-01-01"}}"#, &["d14"]),
    // --- comparisons: ObjectIds ----------------------------------------------------------------
    (r#"{"c_oid":{"$gt":"@OID1"}}"#, &["d02"]),
    (r#"{"c_oid":{"$gte":"@OID1"}}"#, &["d01", "d02", "d07"]),
    (r#"{"c_oid":{"$lt":"0123456789ABCDEF01234567"}}"#, &["d11"]),
    (r#"{"_id":"@D05"}"#, &["d05"]),
    (r#"{"_id":{"$gt":"@D12"}}"#, &["d13", "d14"]),
    (r#"{"_id":{"$lte":"@D02"}}"#, &["d01", "d02"]),
    (r#"{"_id":{"$in":["@D01","@D03"]}}"#, &["d01", "d03"]),
    (
        r#"{"_id":{"$ne":"@D01"}}"#,
        &[
            "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13",
            "d14",
        ],
    ),
    // --- envelope ------------------------------------------------------------------------------
    (r#"{"owner":"@OB"}"#, &["d11", "d12", "d14"]),
    (r#"{"owner._id":"@OB"}"#, &["d11", "d12", "d14"]),
    (
        r#"{"owner":{"$in":["@OA"]}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d13",
        ],
    ),
    (r#"{"creator":"@OB"}"#, &["d14"]),
    (r#"{"creator":{"$ne":"@OA"}}"#, &["d14"]),
    (
        r#"{"creator._id":{"$exists":true}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    // --- cross-type values never compare ----------------------------------------------------
    (r#"{"c_any":{"$gt":5}}"#, &["d05", "d09"]),
    (r#"{"c_any":{"$gte":5}}"#, &["d01", "d05", "d09"]),
    (r#"{"c_any":{"$lt":100}}"#, &["d01", "d05", "d09"]),
    (r#"{"c_any":{"$gt":"4"}}"#, &["d02", "d10"]),
    (
        r#"{"c_any":{"$gte":"2026-01-01T00:00:00.000Z"}}"#,
        &["d02", "d08", "d10"],
    ),
    (r#"{"c_any":{"$gt":false}}"#, &["d07"]),
    (r#"{"c_any":5}"#, &["d01", "d05"]),
    (r#"{"c_any":"5"}"#, &["d02"]),
    (r#"{"c_any":true}"#, &["d07"]),
    (r#"{"c_any":"x"}"#, &["d10"]),
    (r#"{"c_any":"y"}"#, &[]),
    // --- $in / $nin ------------------------------------------------------------------------------
    (
        r#"{"c_str":{"$in":["apple","banana","nope"]}}"#,
        &["d01", "d03"],
    ),
    (r#"{"c_str":{"$in":[]}}"#, &[]),
    (
        r#"{"c_str":{"$nin":[]}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    (
        r#"{"c_str":{"$nin":["apple","banana"]}}"#,
        &[
            "d02", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d13", "d14",
        ],
    ),
    (r#"{"c_tags":{"$in":["blue","c"]}}"#, &["d02", "d05", "d10"]),
    (
        r#"{"c_tags":{"$nin":["red","green"]}}"#,
        &[
            "d02", "d03", "d04", "d07", "d08", "d09", "d10", "d11", "d14",
        ],
    ),
    (
        r#"{"c_str":{"$in":[{"$regex":"/^apple/i"}]}}"#,
        &["d01", "d02", "d11"],
    ),
    (
        r#"{"c_str":{"$in":[{"$regex":"/^b/"},"kiwi"]}}"#,
        &["d03", "d14"],
    ),
    (
        r#"{"c_str":{"$nin":[{"$regex":"/pie$/"},null]}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d12", "d14",
        ],
    ),
    (
        r#"{"c_tags":{"$in":[{"$regex":"/^r/i"}]}}"#,
        &["d01", "d05", "d07", "d12", "d13"],
    ),
    (
        r#"{"c_num":{"$in":["10",2.5,-100]}}"#,
        &["d01", "d06", "d09", "d11"],
    ),
    (r#"{"c_num":{"$in":["-3.5","1000"]}}"#, &["d02", "d05"]),
    (
        r#"{"c_bool":{"$in":[false,null]}}"#,
        &[
            "d02", "d04", "d06", "d07", "d08", "d10", "d11", "d13", "d14",
        ],
    ),
    (r#"{"c_nums":{"$in":[1,12]}}"#, &["d01", "d09"]),
    (r#"{"c_any":{"$in":[7,"5"]}}"#, &["d02", "d05"]),
    (r#"{"c_str":{"$in":[42,true,"kiwi"]}}"#, &["d14"]),
    (
        r#"{"c_oid":{"$in":["FEDCBA9876543210FEDCBA98"]}}"#,
        &["d02"],
    ),
    (
        r#"{"c_items.c_name":{"$in":["washer","screw"]}}"#,
        &["d06", "d12"],
    ),
    // --- $regex ----------------------------------------------------------------------------------
    (r#"{"c_str":{"$regex":"/^apple/"}}"#, &["d01", "d11"]),
    (
        r#"{"c_str":{"$regex":"/^APPLE/i"}}"#,
        &["d01", "d02", "d11"],
    ),
    (r#"{"c_str":{"$regex":"/^line2$/"}}"#, &[]),
    (r#"{"c_str":{"$regex":"/^line2$/m"}}"#, &["d07"]),
    (r#"{"c_str":{"$regex":"/line1.line2/"}}"#, &[]),
    (r#"{"c_str":{"$regex":"/line1.line2/s"}}"#, &["d07"]),
    (r#"{"c_str":{"$regex":"/^LINE1.line2$/is"}}"#, &["d07"]),
    (r#"{"c_str":{"$regex":"/c h e r r y/x"}}"#, &["d10"]),
    (
        r#"{"c_str":{"$regex":"/^a p p l e \\s p i e$/x"}}"#,
        &["d11"],
    ),
    (r#"{"c_str":{"$regex":"/c h e r r y/"}}"#, &[]),
    (r#"{"c_str":{"$regex":"/^.$/"}}"#, &["d08"]),
    (r#"{"c_str":{"$regex":"/ü/i"}}"#, &["d06"]),
    (r#"{"c_str":{"$regex":"/語$/"}}"#, &["d05"]),
    (r#"{"c_str":{"$regex":"/^$/"}}"#, &["d09"]),
    (r#"{"c_str":{"$regex":"/pie/"}}"#, &["d10", "d11"]),
    (r#"{"c_str":{"$regex":"/a\\/b|pie/"}}"#, &["d10", "d11"]),
    (
        r#"{"c_str":{"$regex":"/e/","$ne":"apple"}}"#,
        &["d02", "d07", "d10", "d11", "d12"],
    ),
    (r#"{"c_tags":{"$regex":"/^gr/"}}"#, &["d01", "d06"]),
    (r#"{"c_doc.c_sub":{"$regex":"/^x$/"}}"#, &["d01", "d11"]),
    (
        r#"{"c_items.c_name":{"$regex":"/^bolt$/i"}}"#,
        &["d01", "d02", "d08"],
    ),
    (r#"{"c_any":{"$regex":"/^5$/"}}"#, &["d02"]),
    // --- $size -----------------------------------------------------------------------------------
    (r#"{"c_tags":{"$size":0}}"#, &["d03"]),
    (r#"{"c_tags":{"$size":1}}"#, &["d02", "d06", "d07", "d12"]),
    (r#"{"c_tags":{"$size":2}}"#, &["d01", "d10", "d13"]),
    (r#"{"c_tags":{"$size":3}}"#, &["d05"]),
    (r#"{"c_items":{"$size":2}}"#, &["d01", "d06", "d08", "d12"]),
    (r#"{"c_items":{"$size":0}}"#, &["d03"]),
    (r#"{"c_nums":{"$size":1}}"#, &["d02", "d07"]),
    (r#"{"c_any":{"$size":2}}"#, &["d05", "d10"]),
    (r#"{"c_items.c_tags":{"$size":0}}"#, &["d08"]),
    (r#"{"c_items.c_tags":{"$size":2}}"#, &["d06"]),
    (r#"{"c_doc.c_list":{"$size":2}}"#, &["d07"]),
    // --- $all ------------------------------------------------------------------------------------
    (r#"{"c_tags":{"$all":["red","green"]}}"#, &["d01"]),
    (
        r#"{"c_tags":{"$all":["red"]}}"#,
        &["d01", "d05", "d12", "d13"],
    ),
    (
        r#"{"c_tags":{"$all":["red","red"]}}"#,
        &["d01", "d05", "d12", "d13"],
    ),
    (r#"{"c_tags":{"$all":[]}}"#, &[]),
    (r#"{"c_tags":{"$all":["blue","red"]}}"#, &["d05"]),
    (r#"{"c_nums":{"$all":[9,"1"]}}"#, &["d01"]),
    (r#"{"c_doc.c_list":{"$all":["q","p"]}}"#, &["d07"]),
    (
        r#"{"c_items":{"$all":[{"$elemMatch":{"c_name":"bolt"}},{"$elemMatch":{"c_name":"nut"}}]}}"#,
        &["d01"],
    ),
    (
        r#"{"c_items":{"$all":[{"$elemMatch":{"c_qty":{"$gte":5}}},{"$elemMatch":{"c_qty":{"$lt":5}}}]}}"#,
        &["d06", "d08"],
    ),
    (
        r#"{"c_nums":{"$all":[{"$elemMatch":{"$gt":8}},{"$elemMatch":{"$lt":2}}]}}"#,
        &["d01"],
    ),
    // --- $elemMatch on Document arrays -----------------------------------------------------------
    (
        r#"{"c_items":{"$elemMatch":{"c_name":"bolt","c_qty":{"$gte":5}}}}"#,
        &["d01", "d08"],
    ),
    (
        r#"{"c_items.c_name":"nut","c_items.c_qty":5}"#,
        &["d01", "d10"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_name":"nut","c_qty":5}}}"#,
        &["d10"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_ref":"@R1"}}}"#,
        &["d01", "d08", "d10"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_ref._id":"@R3"}}}"#,
        &["d06"],
    ),
    (r#"{"c_items":{"$elemMatch":{"_id":"@E01b"}}}"#, &["d01"]),
    (
        r#"{"c_items":{"$elemMatch":{"$or":[{"c_name":"screw"},{"c_qty":{"$gt":15}}]}}}"#,
        &["d08", "d12"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"$and":[{"c_name":{"$exists":false}},{"c_qty":0}]}}}"#,
        &["d12"],
    ),
    (r#"{"c_items":{"$elemMatch":{"c_name":null}}}"#, &["d12"]),
    (
        r#"{"c_items":{"$elemMatch":{"c_name":{"$ne":"bolt"}}}}"#,
        &["d01", "d06", "d08", "d10", "d12"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_tags":"n"}}}"#,
        &["d06", "d10"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_tags":{"$size":0}}}}"#,
        &["d08"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_qty":{"$gt":2,"$lt":6}}}}"#,
        &["d01", "d06", "d10"],
    ),
    // --- $elemMatch on primitive arrays ----------------------------------------------------------
    (
        r#"{"c_nums":{"$elemMatch":{"$gt":5,"$lt":9}}}"#,
        &["d02", "d05", "d06"],
    ),
    (
        r#"{"c_nums":{"$elemMatch":{"$gte":9}}}"#,
        &["d01", "d07", "d09", "d11"],
    ),
    (
        r#"{"c_items.c_tags":{"$elemMatch":{"$eq":"m"}}}"#,
        &["d01", "d06"],
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$regex":"/^g/"}}}"#,
        &["d01", "d06"],
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$in":["blue","c"]}}}"#,
        &["d02", "d05", "d10"],
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$ne":"red"}}}"#,
        &["d01", "d02", "d05", "d06", "d07", "d10", "d13"],
    ),
    // --- $type -----------------------------------------------------------------------------------
    (
        r#"{"c_str":{"$type":"string"}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d14",
        ],
    ),
    (r#"{"c_str":{"$type":"null"}}"#, &["d13"]),
    (
        r#"{"c_num":{"$type":"number"}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12", "d14",
        ],
    ),
    (
        r#"{"c_bool":{"$type":"bool"}}"#,
        &["d01", "d02", "d03", "d05", "d07", "d09", "d10", "d12"],
    ),
    (
        r#"{"c_date":{"$type":"date"}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d09", "d10", "d12",
        ],
    ),
    (r#"{"c_date":{"$type":"string"}}"#, &[]),
    (
        r#"{"c_oid":{"$type":"objectId"}}"#,
        &["d01", "d02", "d07", "d11"],
    ),
    (r#"{"c_oid":{"$type":"string"}}"#, &[]),
    (
        r#"{"c_parent":{"$type":"objectId"}}"#,
        &["d02", "d06", "d08", "d12"],
    ),
    (
        r#"{"_id":{"$type":"objectId"}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    (
        r#"{"created":{"$type":"date"}}"#,
        &[
            "d01", "d02", "d03", "d04", "d05", "d06", "d07", "d08", "d09", "d10", "d11", "d12",
            "d13", "d14",
        ],
    ),
    (r#"{"updated":{"$type":"date"}}"#, &["d02", "d14"]),
    (
        r#"{"c_doc":{"$type":"object"}}"#,
        &["d01", "d02", "d06", "d07", "d11", "d13"],
    ),
    (
        r#"{"c_items":{"$type":"array"}}"#,
        &["d01", "d02", "d03", "d06", "d08", "d10", "d12"],
    ),
    (
        r#"{"c_items":{"$type":"object"}}"#,
        &["d01", "d02", "d06", "d08", "d10", "d12"],
    ),
    (
        r#"{"c_tags":{"$type":"array"}}"#,
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d10", "d12", "d13",
        ],
    ),
    (
        r#"{"c_tags":{"$type":"string"}}"#,
        &["d01", "d02", "d05", "d06", "d07", "d10", "d12", "d13"],
    ),
    (r#"{"c_tags":{"$type":"null"}}"#, &["d13"]),
    (
        r#"{"c_nums":{"$type":"number"}}"#,
        &["d01", "d02", "d05", "d06", "d07", "d09", "d11"],
    ),
    (r#"{"c_any":{"$type":"number"}}"#, &["d01", "d05", "d09"]),
    (r#"{"c_any":{"$type":"string"}}"#, &["d02", "d08", "d10"]),
    (r#"{"c_any":{"$type":"bool"}}"#, &["d07"]),
    (r#"{"c_any":{"$type":"array"}}"#, &["d05", "d10"]),
    (r#"{"c_any":{"$type":"object"}}"#, &["d06"]),
    (r#"{"c_any":{"$type":"date"}}"#, &[]),
    (
        r#"{"c_items.c_ref":{"$type":"objectId"}}"#,
        &["d01", "d02", "d06", "d08", "d10"],
    ),
    (
        r#"{"c_items._id":{"$type":"objectId"}}"#,
        &["d01", "d02", "d06", "d08", "d10", "d12"],
    ),
    // --- $and / $or ------------------------------------------------------------------------------
    (
        r#"{"$and":[{"c_num":{"$gt":0}},{"c_bool":true}]}"#,
        &["d01", "d05", "d12"],
    ),
    (
        r#"{"$or":[{"c_num":{"$lt":0}},{"c_str":"kiwi"}]}"#,
        &["d02", "d09", "d14"],
    ),
    (
        r#"{"$or":[{"c_tags":"blue"},{"$and":[{"c_num":{"$gte":9}},{"c_num":{"$lte":10}}]}]}"#,
        &["d01", "d02", "d05", "d07", "d11"],
    ),
    (
        r#"{"$and":[{"$or":[{"c_str":"apple"},{"c_str":"Apple"}]},{"$or":[{"c_bool":false},{"c_num":10}]}]}"#,
        &["d01", "d02"],
    ),
    (
        r#"{"c_bool":true,"$or":[{"c_num":0},{"c_num":42}]}"#,
        &["d03", "d12"],
    ),
    (r#"{"$or":[{"c_str":"nope"}]}"#, &[]),
    (
        r#"{"$or":[{"c_any":null},{"c_any":{"$size":2}}]}"#,
        &["d03", "d04", "d05", "d10", "d11", "d12", "d13", "d14"],
    ),
    (
        r#"{"$or":[{"c_items":{"$elemMatch":{"c_qty":{"$gt":15}}}},{"c_doc.c_flag":false}]}"#,
        &["d06", "d08"],
    ),
    (
        r#"{"$and":[{"c_str":{"$exists":true}},{"$or":[{"owner":"@OB"},{"creator":"@OB"}]}]}"#,
        &["d11", "d12", "d14"],
    ),
    // --- dot paths into Documents and Document arrays ---------------------------------------------
    (r#"{"c_doc.c_flag":false}"#, &["d06"]),
    (r#"{"c_doc.c_sub":"Ünï"}"#, &["d06"]),
    (r#"{"c_doc.c_n":-2}"#, &["d02"]),
    (r#"{"c_items.c_name":"nut"}"#, &["d01", "d06", "d10"]),
    (
        r#"{"c_items.c_name":{"$ne":"bolt"}}"#,
        &[
            "d03", "d04", "d05", "d06", "d07", "d09", "d10", "d11", "d12", "d13", "d14",
        ],
    ),
    (r#"{"c_items.c_ref":"@R1"}"#, &["d01", "d08", "d10"]),
    (r#"{"c_items.c_ref._id":"@R2"}"#, &["d02"]),
    (
        r#"{"c_items.c_qty":{"$exists":true}}"#,
        &["d01", "d02", "d06", "d08", "d10", "d12"],
    ),
    (
        r#"{"c_items.c_name":{"$exists":false}}"#,
        &["d03", "d04", "d05", "d07", "d09", "d11", "d13", "d14"],
    ),
    (r#"{"c_items.c_tags":"m"}"#, &["d01", "d06"]),
    (r#"{"c_items.c_qty":0}"#, &["d12"]),
    (r#"{"c_items._id":"@E06b"}"#, &["d06"]),
    (
        r#"{"c_items._id":{"$in":["@E08a","@E12b"]}}"#,
        &["d08", "d12"],
    ),
    // --- Any arrays, references in elements ---------------------------------------------------
    (r#"{"c_any":{"$elemMatch":{"$gt":6}}}"#, &["d05"]),
    (r#"{"c_any":{"$elemMatch":{"$type":"array"}}}"#, &["d10"]),
    (r#"{"c_any":{"$all":[5,7]}}"#, &["d05"]),
    (r#"{"c_any":{"$all":[5]}}"#, &["d01", "d05"]),
    (r#"{"c_any":{"$size":0}}"#, &[]),
    (
        r#"{"c_items":{"$elemMatch":{"c_ref":{"$in":["@R2","@R3"]}}}}"#,
        &["d02", "d06"],
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_name":{"$in":[{"$regex":"/^b/i"}]},"c_qty":{"$lt":5}}}}"#,
        &["d02", "d08"],
    ),
    (
        r#"{"c_ref":{"$in":["5F0000000000000000000001"]}}"#,
        &["d01", "d06"],
    ),
    (
        r#"{"c_items.c_tags":{"$type":"array"}}"#,
        &["d01", "d06", "d08", "d10"],
    ),
    // --- value casting -----------------------------------------------------------------------------
    (
        r#"{"c_bool":"true","c_num":{"$gte":"42"}}"#,
        &["d05", "d12"],
    ),
    (r#"{"c_str":10}"#, &[]),
];

#[test]
fn where_cases_match_exactly_the_expected_documents() {
    let fx = fixture();
    let all = fx.labels();
    assert!(CASES.len() >= 150, "only {} cases", CASES.len());
    let mut failures = Vec::new();
    for (i, (q, want)) in CASES.iter().enumerate() {
        let q = expand(q);
        for w in *want {
            assert!(all.contains(w), "case {i} {q}: unknown label {w}");
        }
        let want: BTreeSet<&str> = want.iter().copied().collect();
        match parse_where(&q, &fx.def) {
            Err(f) => failures.push(format!("case {i}: {q}\n    unexpected fault: {f}")),
            Ok(e) => {
                let got = fx.matching(&e);
                if got != want {
                    failures.push(format!(
                        "case {i}: {q}\n    expected {want:?}\n    got      {got:?}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} where cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Each query of the table gives the same answer through `parse_value`.
#[test]
fn parse_value_agrees_with_parse_where() {
    let fx = fixture();
    for (q, _) in CASES {
        let q = expand(q);
        let v: Value = serde_json::from_str(&q).unwrap();
        assert_eq!(fx.run(&q), fx.run_value(&v), "{q}");
    }
}

// ---------------------------------------------------------------------------------------------
// validation faults: (where, exact path)
// ---------------------------------------------------------------------------------------------

const FAULTS: &[(&str, &str)] = &[
    // unknown or misplaced operators
    (r#"{"c_num":{"$foo":1}}"#, "where.c_num.$foo"),
    (
        r#"{"$or":[{"c_num":1},{"c_num":{"$foo":1}}]}"#,
        "where.$or[1].c_num.$foo",
    ),
    (
        r#"{"$and":[{"c_num":1},{"$or":[{"c_str":"a"},{"c_str":{"$regex":"/a/","$bar":1}}]}]}"#,
        "where.$and[1].$or[1].c_str.$bar",
    ),
    (r#"{"$nor":[{"c_num":1}]}"#, "where.$nor"),
    (r#"{"$not":{"c_num":1}}"#, "where.$not"),
    (r#"{"$where":"this.c_num > 1"}"#, "where.$where"),
    (r#"{"c_num":{"$not":{"$gt":1}}}"#, "where.c_num.$not"),
    (r#"{"c_num":{"$gt":1,"c_x":2}}"#, "where.c_num.c_x"),
    (
        r#"{"c_str":{"$regex":"/a/","$options":"i"}}"#,
        "where.c_str.$options",
    ),
    (r#"{"c_num":{"$and":[{"$gt":1}]}}"#, "where.c_num.$and"),
    (r#"{"c_num":{"$or":[{"$gt":1}]}}"#, "where.c_num.$or"),
    (
        r#"{"c_tags":{"$elemMatch":{"$or":[{"$eq":"a"}]}}}"#,
        "where.c_tags.$elemMatch",
    ),
    // unknown properties and bad paths
    (r#"{"c_bogus":1}"#, "where.c_bogus"),
    (r#"{"c_doc.c_bogus":1}"#, "where.c_doc.c_bogus"),
    (r#"{"c_items.c_bogus":1}"#, "where.c_items.c_bogus"),
    (
        r#"{"c_items":{"$elemMatch":{"c_bogus":1}}}"#,
        "where.c_items.$elemMatch.c_bogus",
    ),
    (
        r#"{"c_items":{"$elemMatch":{"created":{"$exists":true}}}}"#,
        "where.c_items.$elemMatch.created",
    ),
    (
        r#"{"c_items":{"$all":[{"$elemMatch":{"c_bogus":1}}]}}"#,
        "where.c_items.$all[0].$elemMatch.c_bogus",
    ),
    (r#"{"c_name":"bolt"}"#, "where.c_name"),
    (r#"{"object":"c_thing"}"#, "where.object"),
    (r#"{"":1}"#, "where."),
    (r#"{"c_doc..c_sub":1}"#, "where.c_doc..c_sub"),
    // array indexes in paths
    (r#"{"c_tags.0":"red"}"#, "where.c_tags.0"),
    (r#"{"c_items.0.c_name":"bolt"}"#, "where.c_items.0.c_name"),
    (r#"{"c_items.c_tags.1":"m"}"#, "where.c_items.c_tags.1"),
    // List properties
    (r#"{"c_children":null}"#, "where.c_children"),
    (r#"{"c_children._id":"@D01"}"#, "where.c_children._id"),
    // paths into properties without sub-properties
    (r#"{"c_str.c_x":"a"}"#, "where.c_str.c_x"),
    (r#"{"c_str.length":1}"#, "where.c_str.length"),
    (r#"{"c_num.c_x":1}"#, "where.c_num.c_x"),
    (r#"{"c_ref.c_label":"a"}"#, "where.c_ref.c_label"),
    (r#"{"c_ref._id._id":"@R1"}"#, "where.c_ref._id._id"),
    (r#"{"c_doc._id":"@R1"}"#, "where.c_doc._id"),
    (r#"{"c_doc.c_sub.c_x":"a"}"#, "where.c_doc.c_sub.c_x"),
    (
        r#"{"c_items.c_ref.c_label":"a"}"#,
        "where.c_items.c_ref.c_label",
    ),
    (r#"{"c_file.name":"x"}"#, "where.c_file.name"),
    (r#"{"c_any.k":1}"#, "where.c_any.k"),
    (r#"{"created._id":"@OA"}"#, "where.created._id"),
    (r#"{"_id._id":"@D01"}"#, "where._id._id"),
    (r#"{"owner.name":"x"}"#, "where.owner.name"),
    // operator / type mismatches
    (r#"{"c_num":{"$regex":"/1/"}}"#, "where.c_num.$regex"),
    (r#"{"c_date":{"$regex":"/2026/"}}"#, "where.c_date.$regex"),
    (r#"{"c_oid":{"$regex":"/^0/"}}"#, "where.c_oid.$regex"),
    (r#"{"c_bool":{"$regex":"/t/"}}"#, "where.c_bool.$regex"),
    (
        r#"{"c_num":{"$in":[{"$regex":"/1/"}]}}"#,
        "where.c_num.$in[0].$regex",
    ),
    (r#"{"c_str":{"$size":1}}"#, "where.c_str.$size"),
    (r#"{"c_doc":{"$size":1}}"#, "where.c_doc.$size"),
    (
        r#"{"c_items.c_name":{"$size":1}}"#,
        "where.c_items.c_name.$size",
    ),
    (r#"{"c_doc":{"$gt":1}}"#, "where.c_doc.$gt"),
    (r#"{"c_items":{"$lte":1}}"#, "where.c_items.$lte"),
    (r#"{"c_file":{"$gt":1}}"#, "where.c_file.$gt"),
    (r#"{"c_doc":"x"}"#, "where.c_doc"),
    (r#"{"c_doc":{"c_sub":"x"}}"#, "where.c_doc"),
    (r#"{"c_items":{"$ne":1}}"#, "where.c_items.$ne"),
    (
        r#"{"c_num":{"$elemMatch":{"$gt":1}}}"#,
        "where.c_num.$elemMatch",
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"c_x":1}}}"#,
        "where.c_tags.$elemMatch",
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$size":1}}}"#,
        "where.c_tags.$elemMatch.$size",
    ),
    (
        r#"{"c_items":{"$elemMatch":{"c_qty":{"$regex":"/1/"}}}}"#,
        "where.c_items.$elemMatch.c_qty.$regex",
    ),
    (
        r#"{"c_items":{"$elemMatch":{"$or":[{"c_name":"a"},{"c_qty":{"$foo":1}}]}}}"#,
        "where.c_items.$elemMatch.$or[1].c_qty.$foo",
    ),
    // values that cannot be cast
    (r#"{"c_num":"abc"}"#, "where.c_num"),
    (r#"{"c_num":{"$gt":"abc"}}"#, "where.c_num.$gt"),
    (r#"{"c_num":"NaN"}"#, "where.c_num"),
    (r#"{"c_num":"inf"}"#, "where.c_num"),
    (r#"{"c_num":true}"#, "where.c_num"),
    (r#"{"c_bool":"yes"}"#, "where.c_bool"),
    (r#"{"c_bool":"TRUE"}"#, "where.c_bool"),
    (r#"{"c_bool":1}"#, "where.c_bool"),
    (r#"{"c_date":"yesterday"}"#, "where.c_date"),
    (r#"{"c_date":{"$lt":"2026-13-01"}}"#, "where.c_date.$lt"),
    (r#"{"c_date":true}"#, "where.c_date"),
    (r#"{"c_oid":"xyz"}"#, "where.c_oid"),
    (r#"{"c_oid":"0123456789abcdef0123456g"}"#, "where.c_oid"),
    (r#"{"c_ref":"5f00"}"#, "where.c_ref"),
    (r#"{"c_ref._id":12}"#, "where.c_ref._id"),
    (r#"{"_id":12}"#, "where._id"),
    (r#"{"created":"soon"}"#, "where.created"),
    (r#"{"c_items._id":"nope"}"#, "where.c_items._id"),
    (r#"{"c_num":{"$in":[1,"x"]}}"#, "where.c_num.$in[1]"),
    (
        r#"{"c_date":{"$nin":["2026-01-01","x"]}}"#,
        "where.c_date.$nin[1]",
    ),
    (r#"{"c_nums":{"$all":[1,"x"]}}"#, "where.c_nums.$all[1]"),
    (r#"{"c_num":{"$gt":{"a":1}}}"#, "where.c_num.$gt"),
    (r#"{"c_str":{"$eq":{"$regex":"/a/"}}}"#, "where.c_str.$eq"),
    (
        r#"{"c_str":{"$in":[{"$regex":"/a/","x":1}]}}"#,
        "where.c_str.$in[0]",
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$gt":["a"]}}}"#,
        "where.c_tags.$elemMatch.$gt",
    ),
    // bad regexes
    (r#"{"c_str":{"$regex":"/(/"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"/a/g"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"/a/I"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":""}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"//"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"//i"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"/"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"abc"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"/abc"}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":5}}"#, "where.c_str.$regex"),
    (r#"{"c_str":{"$regex":"/(a)\\1/"}}"#, "where.c_str.$regex"),
    (
        r#"{"c_tags":{"$in":[{"$regex":"/[/"}]}}"#,
        "where.c_tags.$in[0].$regex",
    ),
    (
        r#"{"c_tags":{"$elemMatch":{"$regex":"/a/q"}}}"#,
        "where.c_tags.$elemMatch.$regex",
    ),
    // sizes and arities
    (r#"{"$and":[]}"#, "where.$and"),
    (r#"{"$or":[]}"#, "where.$or"),
    (r#"{"$and":{"c_num":1}}"#, "where.$and"),
    (r#"{"$or":[{"c_num":1},5]}"#, "where.$or[1]"),
    (r#"{"$and":[[{"c_num":1}]]}"#, "where.$and[0]"),
    (
        r#"{"c_items":{"$elemMatch":{"$or":[]}}}"#,
        "where.c_items.$elemMatch.$or",
    ),
    // malformed JSON, non-object where
    (r#"{"c_num":"#, "where"),
    ("", "where"),
    (r#"{"c_num":1}}"#, "where"),
    (r#"{'c_num':1}"#, "where"),
    (r#"[]"#, "where"),
    (r#"[{"c_num":1}]"#, "where"),
    ("5", "where"),
    (r#""c_num""#, "where"),
    ("null", "where"),
    ("true", "where"),
    // bare array values
    (r#"{"c_tags":["red"]}"#, "where.c_tags"),
    (r#"{"c_num":[1,2]}"#, "where.c_num"),
    (r#"{"c_any":[5,7]}"#, "where.c_any"),
    (r#"{"c_num":{"$eq":[1]}}"#, "where.c_num.$eq"),
    (r#"{"c_tags":{"$ne":["red"]}}"#, "where.c_tags.$ne"),
    (
        r#"{"c_tags":{"$all":["red",["x"]]}}"#,
        "where.c_tags.$all[1]",
    ),
    (r#"{"c_tags":{"$in":"red"}}"#, "where.c_tags.$in"),
    (r#"{"c_tags":{"$all":"red"}}"#, "where.c_tags.$all"),
    // other malformed operator arguments
    (r#"{"c_ref":{"_id":"@R1"}}"#, "where.c_ref"),
    (r#"{"c_num":{}}"#, "where.c_num"),
    (r#"{"c_num":{"c_x":1}}"#, "where.c_num"),
    (r#"{"c_num":{"$exists":"yes"}}"#, "where.c_num.$exists"),
    (r#"{"c_num":{"$exists":null}}"#, "where.c_num.$exists"),
    (r#"{"c_tags":{"$size":-1}}"#, "where.c_tags.$size"),
    (r#"{"c_tags":{"$size":1.5}}"#, "where.c_tags.$size"),
    (r#"{"c_tags":{"$size":"1"}}"#, "where.c_tags.$size"),
    (r#"{"c_num":{"$type":"int"}}"#, "where.c_num.$type"),
    (r#"{"c_num":{"$type":1}}"#, "where.c_num.$type"),
    (r#"{"c_tags":{"$elemMatch":5}}"#, "where.c_tags.$elemMatch"),
    (r#"{"c_tags":{"$elemMatch":{}}}"#, "where.c_tags.$elemMatch"),
    (
        r#"{"c_items":{"$elemMatch":[]}}"#,
        "where.c_items.$elemMatch",
    ),
];

/// `{"$and":[{"$and":[ … {"c_num":1} … ]}]}` with `n` levels of `$and`.
fn nested_and(n: usize, inner: Value) -> Value {
    (0..n).fold(inner, |acc, _| json!({"$and": [acc]}))
}

fn and_path(n: usize) -> String {
    format!("where{}", ".$and[0]".repeat(n))
}

/// Faults that need generated input: (source, through parse_value?, path).
fn generated_faults() -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let many: Vec<Value> = (0..10_001).map(|i| json!(i)).collect();
    let strs: Vec<Value> = (0..10_001).map(|i| json!(format!("t{i}"))).collect();
    out.push((
        json!({"c_num": {"$in": many}}).to_string(),
        true,
        "where.c_num.$in".into(),
    ));
    out.push((
        json!({"c_num": {"$nin": many}}).to_string(),
        true,
        "where.c_num.$nin".into(),
    ));
    out.push((
        json!({"c_tags": {"$all": strs}}).to_string(),
        true,
        "where.c_tags.$all".into(),
    ));
    // through the string parser, any of these is also over the 1024-character limit
    out.push((
        json!({"c_num": {"$in": many}}).to_string(),
        false,
        "where".into(),
    ));
    let branches: Vec<Value> = (0..101).map(|i| json!({"c_num": i})).collect();
    out.push((
        json!({"$and": branches}).to_string(),
        true,
        "where.$and".into(),
    ));
    out.push((
        json!({"$or": branches}).to_string(),
        true,
        "where.$or".into(),
    ));
    // regex of 256 characters (the limit is 255)
    let re = format!("/{}/", "a".repeat(254));
    out.push((
        json!({"c_str": {"$regex": re}}).to_string(),
        false,
        "where.c_str.$regex".into(),
    ));
    out.push((
        json!({"c_str": {"$in": [{"$regex": re}]}}).to_string(),
        false,
        "where.c_str.$in[0].$regex".into(),
    ));
    // depth: 8 levels of $and put the innermost query at depth 9
    out.push((
        nested_and(8, json!({"c_num": 1})).to_string(),
        false,
        and_path(8),
    ));
    out.push((
        nested_and(20, json!({"c_num": 1})).to_string(),
        false,
        and_path(8),
    ));
    out.push((
        nested_and(7, json!({"c_items": {"$elemMatch": {"c_qty": 1}}})).to_string(),
        false,
        format!("{}.c_items.$elemMatch", and_path(7)),
    ));
    out.push((
        nested_and(7, json!({"c_nums": {"$elemMatch": {"$gt": 1}}})).to_string(),
        false,
        format!("{}.c_nums.$elemMatch", and_path(7)),
    ));
    out.push((
        nested_and(
            6,
            json!({"c_items": {"$elemMatch": {"$or": [{"c_qty": 1}]}}}),
        )
        .to_string(),
        false,
        format!("{}.c_items.$elemMatch.$or[0]", and_path(6)),
    ));
    // where longer than 1024 characters
    out.push((
        json!({"c_str": "a".repeat(1013)}).to_string(),
        false,
        "where".into(),
    ));
    out
}

fn check_fault(r: Result<Expr, Fault>, src: &str, path: &str) -> Option<String> {
    let short: String = src.chars().take(160).collect();
    match r {
        Ok(_) => Some(format!(
            "{short}\n    expected a fault at {path}, parsed fine"
        )),
        Err(f) => {
            if f.status == 400
                && f.err_code == "cortex.invalidArgument.query"
                && f.path.as_deref() == Some(path)
            {
                None
            } else {
                Some(format!(
                    "{short}\n    expected 400 cortex.invalidArgument.query at {path}\n    got {} {} at {:?}: {}",
                    f.status, f.err_code, f.path, f.message
                ))
            }
        }
    }
}

#[test]
fn invalid_queries_fault_at_the_exact_path() {
    let fx = fixture();
    let generated = generated_faults();
    assert!(FAULTS.len() + generated.len() >= 40);
    let mut failures = Vec::new();
    for (i, (src, path)) in FAULTS.iter().enumerate() {
        let src = expand(src);
        if let Some(m) = check_fault(parse_where(&src, &fx.def), &src, path) {
            failures.push(format!("fault case {i}: {m}"));
        }
    }
    for (i, (src, via_value, path)) in generated.iter().enumerate() {
        let r = if *via_value {
            parse_value(&serde_json::from_str(src).unwrap(), &fx.def)
        } else {
            parse_where(src, &fx.def)
        };
        if let Some(m) = check_fault(r, src, path) {
            failures.push(format!("generated fault case {i}: {m}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fault cases failed:\n{}",
        failures.len(),
        FAULTS.len() + generated.len(),
        failures.join("\n")
    );
}

/// The limits themselves are accepted.
#[test]
fn limits_at_the_boundary_are_accepted() {
    let fx = fixture();
    let ok = |v: Value, want: &[&str]| {
        let got = fx.run_value(&v);
        let want: BTreeSet<&str> = want.iter().copied().collect();
        let short: String = v.to_string().chars().take(120).collect();
        assert_eq!(got, want, "{short}");
    };
    let many: Vec<Value> = (0..10_000).map(|i| json!(i)).collect();
    ok(
        json!({"c_num": {"$in": many}}),
        &[
            "d03", "d07", "d10", "d14", "d01", "d11", "d05", "d08", "d12",
        ],
    );
    let branches: Vec<Value> = (0..100).map(|i| json!({"c_num": i})).collect();
    ok(
        json!({"$or": branches}),
        &["d03", "d07", "d10", "d14", "d01", "d11", "d12"],
    );
    ok(json!({"$and": [{"c_num": 10}]}), &["d01", "d11"]);
    let re = format!("/{}/", "a".repeat(253));
    assert_eq!(re.chars().count(), 255);
    ok(json!({"c_str": {"$regex": re}}), &[]);
    ok(
        json!({"c_str": {"$regex": "/./"}}),
        &[
            "d01", "d02", "d03", "d05", "d06", "d07", "d08", "d10", "d11", "d12", "d14",
        ],
    );
    ok(nested_and(7, json!({"c_num": 10})), &["d01", "d11"]);
    ok(
        nested_and(6, json!({"c_items": {"$elemMatch": {"c_qty": 20}}})),
        &["d08"],
    );
    ok(
        nested_and(6, json!({"c_nums": {"$elemMatch": {"$gt": 11}}})),
        &["d09"],
    );
    // 1024 characters (not bytes) is the longest where
    for pad in ["a", "é"] {
        let src = json!({"c_str": pad.repeat(1012)}).to_string();
        assert_eq!(src.chars().count(), 1024);
        let e = parse_where(&src, &fx.def).expect("1024 characters are allowed");
        assert!(fx.matching(&e).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// property tests
// ---------------------------------------------------------------------------------------------

const OPS: &[&str] = &[
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists",
];

/// Queryable fields and values that cast to their type (null included).
fn pools() -> &'static [(&'static str, Vec<Value>)] {
    static P: OnceLock<Vec<(&'static str, Vec<Value>)>> = OnceLock::new();
    P.get_or_init(|| {
        let n = Value::Null;
        vec![
            (
                "c_str",
                vec![
                    json!("apple"),
                    json!("Apple"),
                    json!("banana"),
                    json!(""),
                    json!("kiwi"),
                    json!("apple pie"),
                    json!("zzz"),
                    json!("日本語"),
                    n.clone(),
                ],
            ),
            (
                "c_num",
                vec![
                    json!(-100),
                    json!(-3.5),
                    json!(0),
                    json!(2.5),
                    json!(5),
                    json!(9),
                    json!(10),
                    json!(42),
                    json!(1000),
                    json!("7"),
                    n.clone(),
                ],
            ),
            (
                "c_bool",
                vec![json!(true), json!(false), json!("false"), n.clone()],
            ),
            (
                "c_date",
                vec![
                    json!("1969-07-20T20:17:00Z"),
                    json!("1970-01-01"),
                    json!("1999-12-31"),
                    json!("2025-12-31T23:59:59.999Z"),
                    json!("2026-01-01"),
                    json!(0),
                    n.clone(),
                ],
            ),
            (
                "c_oid",
                vec![json!(OID0), json!(OID1), json!(OID2), n.clone()],
            ),
            (
                "c_ref",
                vec![json!(rid(1)), json!(rid(2)), json!(rid(3)), n.clone()],
            ),
            ("c_ref._id", vec![json!(rid(1)), json!(rid(2)), n.clone()]),
            (
                "c_tags",
                vec![
                    json!("red"),
                    json!("green"),
                    json!("blue"),
                    json!("Red"),
                    json!("c"),
                    json!("zzz"),
                    n.clone(),
                ],
            ),
            (
                "c_nums",
                vec![
                    json!(-1),
                    json!(1),
                    json!(5),
                    json!(5.5),
                    json!(6),
                    json!(9),
                    json!(10),
                    json!(12),
                    n.clone(),
                ],
            ),
            (
                "c_doc.c_n",
                vec![json!(-2), json!(1), json!(5), json!(10), n.clone()],
            ),
            (
                "c_doc.c_sub",
                vec![json!("x"), json!("y"), json!("Ünï"), n.clone()],
            ),
            (
                "c_items.c_name",
                vec![
                    json!("bolt"),
                    json!("Bolt"),
                    json!("nut"),
                    json!("screw"),
                    json!("washer"),
                    n.clone(),
                ],
            ),
            (
                "c_items.c_qty",
                vec![
                    json!(0),
                    json!(1),
                    json!(2),
                    json!(3),
                    json!(5),
                    json!(7),
                    json!(10),
                    json!(20),
                    n.clone(),
                ],
            ),
            (
                "c_items.c_ref",
                vec![json!(rid(1)), json!(rid(2)), json!(rid(3)), n.clone()],
            ),
            (
                "c_any",
                vec![
                    json!(5),
                    json!("5"),
                    json!(7),
                    json!(true),
                    json!("x"),
                    json!("2026-01-01T00:00:00.000Z"),
                    n.clone(),
                ],
            ),
            (
                "_id",
                vec![json!(did(1)), json!(did(5)), json!(did(13)), n.clone()],
            ),
            (
                "created",
                vec![
                    json!("2025-01-01"),
                    json!("2025-06-15"),
                    json!("2026-01-01"),
                    n.clone(),
                ],
            ),
            ("owner", vec![json!(OA), json!(OB)]),
            ("updated", vec![json!("2025-03-01"), json!("2026-03-01"), n]),
        ]
    })
}

fn obj(k: &str, v: Value) -> Value {
    let mut m = Map::new();
    m.insert(k.to_string(), v);
    Value::Object(m)
}

/// One simple field condition `{field: cond}` built from indexes into the pools.
fn build_cond(field: usize, op: usize, picks: &[Index], flag: bool) -> Value {
    let (name, pool) = &pools()[field];
    let pick = |i: &Index| pool[i.index(pool.len())].clone();
    let first = picks.first().map(pick).unwrap_or_else(|| pool[0].clone());
    let op = OPS[op];
    let cond = match op {
        "$exists" => json!({"$exists": flag}),
        "$in" | "$nin" => obj(op, Value::Array(picks.iter().map(pick).collect())),
        "$gt" | "$gte" | "$lt" | "$lte" if first.is_null() => json!({"$eq": null}),
        "$eq" if flag => first,
        _ => obj(op, first),
    };
    obj(name, cond)
}

fn simple_cond() -> impl Strategy<Value = Value> {
    (
        0..pools().len(),
        0..OPS.len(),
        prop::collection::vec(any::<Index>(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(f, o, picks, flag)| build_cond(f, o, &picks, flag))
}

fn set_of(q: &Value) -> BTreeSet<&'static str> {
    fixture().run_value(q)
}

const KEYS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$size",
    "$all",
    "$elemMatch",
    "$type",
    "$and",
    "$or",
    "$not",
    "$nor",
    "$foo",
    "$",
    "",
    ".",
    "c_str",
    "c_num",
    "c_bool",
    "c_date",
    "c_oid",
    "c_ref",
    "c_ref._id",
    "c_parent",
    "c_children",
    "c_tags",
    "c_nums",
    "c_doc",
    "c_doc.c_sub",
    "c_doc.c_n",
    "c_doc.c_list",
    "c_items",
    "c_items._id",
    "c_items.c_name",
    "c_items.c_qty",
    "c_items.c_ref",
    "c_items.c_tags",
    "c_file",
    "c_any",
    "c_any.k",
    "_id",
    "created",
    "updated",
    "creator",
    "owner._id",
    "c_tags.0",
    "c_name",
    "c_qty",
    "c_sub",
    "bogus",
    "c_str.x",
];

const STRINGS: &[&str] = &[
    "/a/i",
    "/(/",
    "/^b/",
    "/x/q",
    "",
    "2026-01-01",
    "2026-01-01T00:00:00.000Z",
    "red",
    "bolt",
    "apple",
    OID1,
    "5f0000000000000000000001",
    "string",
    "number",
    "bool",
    "date",
    "objectId",
    "object",
    "array",
    "null",
    "true",
    "10",
    "1e3",
    "x",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-20i64..20).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(10, 96, 5, |inner| {
        let key = prop_oneof![
            4 => prop::sample::select(KEYS).prop_map(str::to_string),
            1 => "[$a-z_.0-9]{0,10}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every fault of the parser is a 400 `cortex.invalidArgument.query` with a `where…` path.
fn assert_well_formed(r: &Result<Expr, Fault>, src: &str) {
    if let Err(f) = r {
        assert_eq!(f.status, 400, "{src}: {f}");
        assert_eq!(f.err_code, "cortex.invalidArgument.query", "{src}: {f}");
        let p = f.path.as_deref().unwrap_or_default();
        assert!(p.starts_with("where"), "{src}: path {p:?}");
    }
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise (scripts/soak.sh raises it)
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn parser_never_panics_on_arbitrary_strings(s in any::<String>()) {
        let fx = fixture();
        let r = parse_where(&s, &fx.def);
        assert_well_formed(&r, &s);
    }

    #[test]
    fn parser_never_panics_on_json_like_strings(s in r#"[{}\[\]":,$a-z_.0-9 \\/-]{0,80}"#) {
        let fx = fixture();
        let r = parse_where(&s, &fx.def);
        assert_well_formed(&r, &s);
        if let Ok(e) = r {
            let _ = fx.matching(&e);
        }
    }

    #[test]
    fn parser_and_matcher_never_panic_on_arbitrary_json(v in arb_json()) {
        let fx = fixture();
        let src = v.to_string();
        let r = parse_value(&v, &fx.def);
        assert_well_formed(&r, &src);
        if src.chars().count() <= 1024 {
            // the string parser agrees with the value parser, fault path included
            let r2 = parse_where(&src, &fx.def);
            match (&r, &r2) {
                (Ok(_), Ok(_)) => {}
                (Err(a), Err(b)) => prop_assert_eq!(&a.path, &b.path, "{}", src),
                _ => prop_assert!(false, "{}: parse_value {:?} vs parse_where {:?}",
                    src, r.is_ok(), r2.is_ok()),
            }
        }
        if let Ok(e) = r {
            let _ = fx.matching(&e);
        }
    }

    #[test]
    fn and_is_intersection_and_or_is_union(a in simple_cond(), b in simple_cond()) {
        let sa = set_of(&a);
        let sb = set_of(&b);
        let and = set_of(&json!({"$and": [a.clone(), b.clone()]}));
        let or = set_of(&json!({"$or": [a.clone(), b.clone()]}));
        let inter: BTreeSet<_> = sa.intersection(&sb).copied().collect();
        let union: BTreeSet<_> = sa.union(&sb).copied().collect();
        prop_assert_eq!(&and, &inter, "$and of {} and {}", a, b);
        prop_assert_eq!(&or, &union, "$or of {} and {}", a, b);
        // nesting does not change the answer
        let nested = set_of(&json!({"$or": [{"$and": [a.clone()]}, {"$or": [b.clone()]}]}));
        prop_assert_eq!(&nested, &union);
        // two different fields in one object are an implicit $and
        let (ka, kb) = (a.as_object().unwrap(), b.as_object().unwrap());
        let (fa, fb) = (ka.keys().next().unwrap(), kb.keys().next().unwrap());
        if fa != fb {
            let mut m = ka.clone();
            m.extend(kb.clone());
            prop_assert_eq!(&set_of(&Value::Object(m)), &inter, "{} + {}", a, b);
        }
    }

    #[test]
    fn nin_is_the_complement_of_in(
        field in 0..pools().len(),
        picks in prop::collection::vec(any::<Index>(), 0..5),
    ) {
        let fx = fixture();
        let (name, pool) = &pools()[field];
        let list: Vec<Value> = picks.iter().map(|i| pool[i.index(pool.len())].clone()).collect();
        let sin = set_of(&obj(name, json!({"$in": list})));
        let snin = set_of(&obj(name, json!({"$nin": list})));
        let present = set_of(&obj(name, json!({"$exists": true})));
        let want: BTreeSet<_> = present.difference(&sin).copied().collect();
        let got: BTreeSet<_> = snin.intersection(&present).copied().collect();
        prop_assert_eq!(&got, &want, "{} $nin {:?} among present", name, list);
        // over all documents too: $nin is exactly "not $in"
        let all = fx.labels();
        let want_all: BTreeSet<_> = all.difference(&sin).copied().collect();
        prop_assert_eq!(&snin, &want_all, "{} $nin {:?}", name, list);
        prop_assert!(sin.is_disjoint(&snin));
    }

    #[test]
    fn ne_is_the_complement_of_eq(field in 0..pools().len(), pick in any::<Index>()) {
        let fx = fixture();
        let (name, pool) = &pools()[field];
        let v = pool[pick.index(pool.len())].clone();
        let seq = set_of(&obj(name, json!({"$eq": v})));
        let bare = set_of(&obj(name, v.clone()));
        let sne = set_of(&obj(name, json!({"$ne": v})));
        prop_assert_eq!(&seq, &bare);
        let all = fx.labels();
        let want: BTreeSet<_> = all.difference(&seq).copied().collect();
        prop_assert_eq!(&sne, &want, "{} $ne {}", name, v);
        // $in of one value is $eq
        let sin = set_of(&obj(name, json!({"$in": [v]})));
        prop_assert_eq!(&sin, &seq);
    }

    #[test]
    fn exists_splits_the_documents(field in 0..pools().len()) {
        let fx = fixture();
        let name = pools()[field].0;
        let yes = set_of(&obj(name, json!({"$exists": true})));
        let no = set_of(&obj(name, json!({"$exists": false})));
        prop_assert!(yes.is_disjoint(&no));
        let union: BTreeSet<_> = yes.union(&no).copied().collect();
        prop_assert_eq!(union, fx.labels());
        // missing implies `null` equality
        let null = set_of(&obj(name, Value::Null));
        prop_assert!(no.is_subset(&null), "{}", name);
    }
}

// ---------------------------------------------------------------------------------------------
// divergences from the contract (ignored so the suite stays green; see the messages)
// ---------------------------------------------------------------------------------------------

/// MongoDB: `{"a.b": null}` matches a document whose array `a` has an element without `b`
/// (each element is looked at separately; a missing value equals null). `$ne: null`,
/// `$in: [null]` and `$nin: [null]` follow.
#[test]
fn null_on_a_document_array_path_matches_elements_missing_the_field() {
    let (_, def) = definitions();
    let docs = [
        (
            "some_missing",
            make_doc(&def, 1, json!({"c_items": [{"c_name": "a"}, {"c_qty": 1}]})),
        ),
        (
            "all_named",
            make_doc(&def, 2, json!({"c_items": [{"c_name": "a"}]})),
        ),
        ("no_items", make_doc(&def, 3, json!({}))),
    ];
    let run = |q: &str| -> BTreeSet<&str> {
        let e = parse_where(q, &def).unwrap();
        docs.iter()
            .filter(|(_, d)| matches(&e, d))
            .map(|(l, _)| *l)
            .collect()
    };
    let set = |l: &[&'static str]| l.iter().copied().collect::<BTreeSet<&str>>();
    assert_eq!(
        run(r#"{"c_items.c_name":null}"#),
        set(&["some_missing", "no_items"])
    );
    assert_eq!(
        run(r#"{"c_items.c_name":{"$in":[null,"zzz"]}}"#),
        set(&["some_missing", "no_items"])
    );
    assert_eq!(
        run(r#"{"c_items.c_name":{"$ne":null}}"#),
        set(&["all_named"])
    );
    assert_eq!(
        run(r#"{"c_items.c_name":{"$nin":[null]}}"#),
        set(&["all_named"])
    );
}

/// MongoDB: `$all` applies to any path, including one that crosses a Document array
/// (`{"c_items.c_name": {"$all": ["bolt", "nut"]}}` = some element named bolt and some named
/// nut). SPEC §5 restricts only `$size` to array properties.
#[test]
fn all_over_a_document_array_path() {
    let fx = fixture();
    let want: BTreeSet<&str> = ["d01"].into_iter().collect();
    assert_eq!(
        fx.run(r#"{"c_items.c_name":{"$all":["bolt","nut"]}}"#),
        want
    );
    let want: BTreeSet<&str> = ["d01", "d06", "d10"].into_iter().collect();
    assert_eq!(fx.run(r#"{"c_items.c_name":{"$all":["nut"]}}"#), want);
}

/// MongoDB: `{f: {"$all": [v]}}` on a non-array value is `{f: v}`.
#[test]
fn all_on_a_scalar_property() {
    let fx = fixture();
    let want: BTreeSet<&str> = ["d01"].into_iter().collect();
    assert_eq!(fx.run(r#"{"c_str":{"$all":["apple"]}}"#), want);
}

/// Dates compare chronologically. Epoch milliseconds are accepted for Dates and reach years
/// past 9999.
/// Dates are kept in years 0000-9999, where the stored string order is the time order:
/// later dates are refused on input and in queries instead of comparing wrongly.
#[test]
fn dates_after_year_9999_are_refused() {
    let (_, def) = definitions();
    let err = new_doc(
        &def,
        json!({"c_date": 253_402_300_800_000_i64}),
        ObjectId::new(),
        &mut AnyRef,
    )
    .unwrap_err();
    assert_eq!(err.faults[0].path.as_deref(), Some("c_date"));
    let last = make_doc(&def, 1, json!({"c_date": 253_402_300_799_999_i64}));
    let q = parse_where(r#"{"c_date":{"$gt":"2026-06-01"}}"#, &def).unwrap();
    assert!(matches(&q, &last), "stored {}", last.props["c_date"]);
    let f = parse_where(r#"{"c_date":{"$gt":253402300800000}}"#, &def).unwrap_err();
    assert_eq!(f.path.as_deref(), Some("where.c_date.$gt"));
}
