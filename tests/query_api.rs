//! The query engine through the API: `where`, `paths`, `include`, `expand`, `prefix` on
//! exports (archive contents checked) and on document lists (with `sort`).

mod common;

use common::*;
use serde_json::{Value, json};

struct Fixture {
    tok: String,
    sites: Vec<String>,
    visits: Vec<String>,
    regions: Vec<String>,
}

async fn fixture<S: TestService>(svc: &S) -> Fixture {
    let tok = org_with_admin(svc, "acme").await;
    let def = |body: Value| call(svc, "POST", "/acme/v2/objects", Some(&tok), Some(body));
    assert_eq!(
        def(json!({"name": "c_region", "properties": [{"name": "c_name", "type": "String"}]}))
            .await
            .0,
        201
    );
    assert_eq!(
        def(json!({"name": "c_site", "properties": [
            {"name": "c_name", "type": "String"},
            {"name": "c_region", "type": "Reference", "sourceObject": "c_region"},
            {"name": "c_code", "type": "String", "optional": true}]}))
        .await
        .0,
        201
    );
    let (s, v) = def(json!({"name": "c_visit", "properties": [
            {"name": "c_n", "type": "Number"},
            {"name": "c_site", "type": "Reference", "sourceObject": "c_site"},
            {"name": "c_rows", "type": "Document", "array": true, "properties": [
                {"name": "c_v", "type": "String"}, {"name": "c_k", "type": "Number"}]}]}))
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = call(
        svc,
        "PATCH",
        "/acme/v2/objects/c_site",
        Some(&tok),
        Some(json!({"properties": [{"name": "c_visits", "type": "List", "sourceObject": "c_visit", "linkedProperty": "c_site"}]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut regions = Vec::new();
    for r in ["North", "South"] {
        let (_, v) = call(
            svc,
            "POST",
            "/acme/v2/c_regions",
            Some(&tok),
            Some(json!({"c_name": r})),
        )
        .await;
        regions.push(v["_id"].as_str().unwrap().to_string());
    }
    let mut sites = Vec::new();
    for (i, s) in ["Boston", "Lyon"].iter().enumerate() {
        let (_, v) = call(
            svc,
            "POST",
            "/acme/v2/c_sites",
            Some(&tok),
            Some(json!({"c_name": s, "c_region": regions[i], "c_code": format!("S{i}")})),
        )
        .await;
        sites.push(v["_id"].as_str().unwrap().to_string());
    }
    let mut visits = Vec::new();
    for i in 0..6 {
        let (s, v) = call(
            svc,
            "POST",
            "/acme/v2/c_visits",
            Some(&tok),
            Some(json!({"c_n": i, "c_site": sites[i % 2], "c_rows": [{"c_v": format!("a{i}"), "c_k": i}, {"c_v": "b", "c_k": 10 + i}]})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        visits.push(v["_id"].as_str().unwrap().to_string());
    }
    Fixture {
        tok,
        sites,
        visits,
        regions,
    }
}

async fn export_lines<S: TestService>(svc: &S, tok: &str, body: Value) -> Vec<Value> {
    let (s, v) = call(svc, "POST", "/acme/v2/exports", Some(tok), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["_id"].as_str().unwrap();
    let rec = wait_ready(svc, tok, "acme", id).await;
    assert_eq!(rec["state"], "ready", "{rec}");
    let (_, zip) = get_bytes(svc, tok, &format!("/acme/v2/exports/{id}/dataFile/content")).await;
    let (_, bytes) = unzip(&zip).remove(0);
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_web::test]
async fn exports_filter_with_where_and_shape_with_paths_and_expand() {
    let app = app().await;
    let f = fixture(&app.svc).await;
    let w = json!({"$or": [{"c_n": {"$gte": 4}}, {"c_rows": {"$elemMatch": {"c_v": "a1"}}}]})
        .to_string();
    let lines = export_lines(
        &app.svc,
        &f.tok,
        json!({"label": "w", "objects": "c_visits", "where": w, "paths": ["c_n"]}),
    )
    .await;
    let got: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["_id"].as_str().unwrap().to_string(),
                l["c_n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (f.visits[1].clone(), 1),
            (f.visits[4].clone(), 4),
            (f.visits[5].clone(), 5)
        ]
    );

    // a path into a reference expands it; expand replaces references with default views
    let lines = export_lines(
        &app.svc,
        &f.tok,
        json!({"label": "e", "objects": "c_visits", "where": "{\"c_n\": 0}", "paths": ["c_site.c_name", "c_n"]}),
    )
    .await;
    assert_eq!(
        lines,
        vec![
            json!({"_id": f.visits[0], "object": "c_visit", "c_n": 0, "c_site": {"_id": f.sites[0], "c_name": "Boston"}})
        ]
    );
    let lines = export_lines(
        &app.svc,
        &f.tok,
        json!({"label": "x", "objects": "c_visits", "where": "{\"c_n\": 1}", "expand": ["c_site.c_region"], "paths": ["c_site"]}),
    )
    .await;
    let site = &lines[0]["c_site"];
    assert_eq!(site["_id"], f.sites[1].as_str());
    assert_eq!(site["c_name"], "Lyon");
    assert_eq!(
        site.get("c_code"),
        None,
        "optional properties stay out of an expanded view"
    );
    assert_eq!(site["c_region"]["c_name"], "South");
    assert_eq!(site["c_region"]["_id"], f.regions[1].as_str());

    // a missing target keeps the reference
    let (s, _) = call(
        &app.svc,
        "DELETE",
        &format!("/acme/v2/c_regions/{}", f.regions[1]),
        Some(&f.tok),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let lines = export_lines(&app.svc, &f.tok, json!({"label": "m", "objects": "c_sites", "expand": ["c_region"], "where": "{\"c_name\": \"Lyon\"}"})).await;
    assert_eq!(
        lines[0]["c_region"],
        json!({"_id": f.regions[1], "object": "c_region", "path": format!("/c_regions/{}", f.regions[1])})
    );
}

#[actix_web::test]
async fn prefix_exports_document_array_elements_and_list_members() {
    let app = app().await;
    let f = fixture(&app.svc).await;
    let lines = export_lines(
        &app.svc,
        &f.tok,
        json!({"label": "p", "objects": "c_visits", "prefix": format!("{}/c_rows", f.visits[2]), "where": "{\"c_k\": {\"$gt\": 5}}"}),
    )
    .await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["c_v"], "b");
    assert_eq!(lines[0]["c_k"], 12);
    assert!(lines[0]["_id"].is_string());

    let lines = export_lines(
        &app.svc,
        &f.tok,
        json!({"label": "l", "objects": "c_sites", "prefix": format!("{}/c_visits", f.sites[0]), "paths": ["c_n"]}),
    )
    .await;
    let ns: Vec<i64> = lines.iter().map(|l| l["c_n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![0, 2, 4]);

    for (prefix, why) in [
        (format!("{}/c_n", f.visits[0]), "not an array"),
        ("nothex/c_rows".to_string(), "bad id"),
        (format!("{}/c_rows", f.sites[0]), "no such document"),
        (format!("{}/c_nope", f.visits[0]), "unknown property"),
        ("justtext".to_string(), "no slash"),
    ] {
        let got = call(
            &app.svc,
            "POST",
            "/acme/v2/exports",
            Some(&f.tok),
            Some(json!({"label": "x", "objects": "c_visits", "prefix": prefix})),
        )
        .await;
        assert_fault(&got, 400, "cortex.validation.failed", None);
        assert_eq!(sub_paths(&got.1), ["prefix"], "{why}");
    }
    // where is checked against the elements, not the object
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&f.tok),
        Some(json!({"label": "x", "objects": "c_visits", "prefix": format!("{}/c_rows", f.visits[0]), "where": "{\"c_n\": 1}"})),
    )
    .await;
    assert_eq!(
        got.1["faults"][0]["errCode"],
        "cortex.invalidArgument.query"
    );
    assert_eq!(got.1["faults"][0]["path"], "where.c_n");
}

#[actix_web::test]
async fn where_faults_name_the_exact_path() {
    let app = app().await;
    let f = fixture(&app.svc).await;
    for (w, path) in [
        (
            json!({"$or": [{"c_n": 1}, {"c_n": {"$foo": 1}}]}),
            "where.$or[1].c_n.$foo",
        ),
        (json!({"c_nope": 1}), "where.c_nope"),
        (json!({"c_n": {"$regex": "/x/"}}), "where.c_n.$regex"),
        (json!({"c_n": "abc"}), "where.c_n"),
        (json!({"c_n": [1, 2]}), "where.c_n"),
        (json!({"c_n": {"$or": [{"c_n": 1}]}}), "where.c_n.$or"),
    ] {
        let got = call(
            &app.svc,
            "POST",
            "/acme/v2/exports",
            Some(&f.tok),
            Some(json!({"label": "x", "objects": "c_visits", "where": w.to_string()})),
        )
        .await;
        assert_fault(&got, 400, "cortex.validation.failed", None);
        assert_eq!(
            got.1["faults"][0]["errCode"], "cortex.invalidArgument.query",
            "{w}"
        );
        assert_eq!(got.1["faults"][0]["path"], path, "{w}");
    }
    let long = format!("{{\"c_n\": {}}}", "1".repeat(1100));
    let got = call(
        &app.svc,
        "POST",
        "/acme/v2/exports",
        Some(&f.tok),
        Some(json!({"label": "x", "objects": "c_visits", "where": long})),
    )
    .await;
    assert_eq!(sub_paths(&got.1), ["where"]);
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[actix_web::test]
async fn document_lists_take_where_sort_paths_and_expand() {
    let app = app().await;
    let f = fixture(&app.svc).await;
    let q = format!(
        "/acme/v2/c_visits?where={}&sort={}&paths=c_n,c_site.c_name&total=true&limit=2",
        enc(&json!({"c_n": {"$in": [1, 2, 3, 5]}}).to_string()),
        enc(&json!({"c_n": -1}).to_string())
    );
    let (s, v) = call(&app.svc, "GET", &q, Some(&f.tok), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 4);
    assert_eq!(v["hasMore"], true);
    let ns: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["c_n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![5, 3]);
    assert_eq!(v["data"][0]["c_site"]["c_name"], "Lyon");
    let (_, v) = call(&app.svc, "GET", &format!("{q}&skip=2"), Some(&f.tok), None).await;
    let ns: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["c_n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![2, 1]);
    let (_, v) = call(
        &app.svc,
        "GET",
        "/acme/v2/c_visits?sort=c_n&limit=1&expand=c_site",
        Some(&f.tok),
        None,
    )
    .await;
    assert_eq!(v["data"][0]["c_n"], 0);
    assert_eq!(v["data"][0]["c_site"]["c_name"], "Boston");
    let (_, v) = call(
        &app.svc,
        "GET",
        &format!("/acme/v2/c_sites/{}?include=c_code", f.sites[0]),
        Some(&f.tok),
        None,
    )
    .await;
    assert_eq!(v["c_code"], "S0");
    for (q, code, path) in [
        (
            "/acme/v2/c_visits?where=%7Bbad",
            "cortex.invalidArgument.query",
            "where",
        ),
        (
            "/acme/v2/c_visits?sort=c_nope",
            "cortex.invalidArgument.sort",
            "sort.c_nope",
        ),
        (
            "/acme/v2/c_visits?paths=c_zz",
            "cortex.invalidArgument.paths",
            "paths[0]",
        ),
        (
            "/acme/v2/c_visits?expand=c_n",
            "cortex.invalidArgument.expand",
            "expand[0]",
        ),
    ] {
        let got = call(&app.svc, "GET", q, Some(&f.tok), None).await;
        assert_fault(&got, 400, code, Some(path));
    }
}

/// Properties come out in definition order whatever the view leaves out: the default view
/// (an optional property not included), a principal's read levels, the fast lane (exports
/// without paths) and the general path (document reads, exports with paths) alike.
#[actix_web::test]
async fn property_order_survives_what_the_view_leaves_out() {
    let app = app().await;
    let svc = &app.svc;
    let tok = org_with_admin(svc, "acme").await;
    call_expect(
        svc,
        "POST",
        "/acme/v2/objects",
        &tok,
        Some(json!({"name": "c_thing", "properties": [
            {"name": "c_a", "type": "String"},
            {"name": "c_opt", "type": "String", "optional": true},
            {"name": "c_b", "type": "String"},
            {"name": "c_secret", "type": "String", "readAccess": "delete"},
            {"name": "c_c", "type": "String"},
            {"name": "c_d", "type": "String"}]})),
        201,
    )
    .await;
    let body =
        json!({"c_a": "a", "c_opt": "o", "c_b": "b", "c_secret": "s", "c_c": "c", "c_d": "d"});
    let doc = call_expect(svc, "POST", "/acme/v2/c_things", &tok, Some(body), 201).await;
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with("c_"))
            .cloned()
            .collect()
    };
    let id = doc["_id"].as_str().unwrap();
    let (_, read) = call(
        svc,
        "GET",
        &format!("/acme/v2/c_things/{id}"),
        Some(&tok),
        None,
    )
    .await;
    assert_eq!(
        keys(&read),
        ["c_a", "c_b", "c_secret", "c_c", "c_d"],
        "{read}"
    );
    let fast = export_lines(svc, &tok, json!({"label": "order", "objects": "c_things"})).await;
    assert_eq!(keys(&fast[0]), ["c_a", "c_b", "c_secret", "c_c", "c_d"]);
    // with c_opt included, in definition order: an export's first line
    let included = async || {
        let lines = export_lines(
            svc,
            &tok,
            json!({"label": "order", "objects": "c_things", "include": ["c_opt"]}),
        )
        .await;
        assert_eq!(
            keys(&lines[0]),
            ["c_a", "c_opt", "c_b", "c_secret", "c_c", "c_d"]
        );
        lines.into_iter().next().unwrap()
    };
    included().await;
    // removing and setting again moves c_opt to the end of the stored form; output keeps
    // the definition's order
    for patch in [json!({"c_opt": null}), json!({"c_opt": "o2"})] {
        call_expect(
            svc,
            "PATCH",
            &format!("/acme/v2/c_things/{id}"),
            &tok,
            Some(patch),
            200,
        )
        .await;
    }
    assert_eq!(included().await["c_opt"], "o2");
    let general = export_lines(
        svc,
        &tok,
        json!({"label": "order", "objects": "c_things", "paths": ["c_a", "c_b", "c_c", "c_d", "c_opt"]}),
    )
    .await;
    assert_eq!(keys(&general[0]), ["c_a", "c_opt", "c_b", "c_c", "c_d"]);
}
