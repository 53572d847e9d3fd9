//! `exportd demo`: a master key, the org `demo`, an administrator and a sample object with
//! realistic documents and a few files — created once, then served.

use crate::app::{AppState, write_secret_file};
use crate::config::{Config, DemoArgs};
use crate::crypto::Key;
use crate::model::document::StoredDoc;
use crate::model::ids::{ObjectId, iso};
use crate::model::org::{ADMIN_ROLE, Account, TokenRec};
use crate::model::schema::parse_definition;
use crate::store::{BlobKind, Store, blocking};
use actix_web::web;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

pub const DEMO_ORG: &str = "demo";
pub const DEMO_EMAIL: &str = "admin@demo.local";
pub const DEMO_DOCS: usize = 10_000;

/// Settles the demo's data dir and master key (created once, mode 0600).
pub fn prepare(a: DemoArgs) -> Result<Config, String> {
    std::fs::create_dir_all(&a.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", a.data_dir.display()))?;
    let key_file = a.data_dir.join("master.key");
    let key = if key_file.exists() {
        Key::load_file(&key_file)?
    } else {
        let k = Key::random();
        write_secret_file(&key_file, &k.to_hex())?;
        eprintln!("exportd: created master key {}", key_file.display());
        k
    };
    Config::from_common(a.data_dir, key, a.common)
}

/// Creates the demo org and data unless present; returns the banner to print.
pub async fn seed(state: &web::Data<AppState>) -> Result<String, String> {
    let store = state.store.clone();
    let dir = state.config.data_dir.clone();
    let creds_file = dir.join("demo-credentials.txt");
    let creds = blocking(move || {
        if store.get_org(DEMO_ORG)?.is_some() {
            return Ok(None);
        }
        Ok(Some(create(&store)?))
    })
    .await
    .map_err(|e| format!("demo setup failed: {e}"))?;
    if let Some(c) = creds {
        write_secret_file(&creds_file, &c)?;
    }
    let creds = std::fs::read_to_string(&creds_file)
        .map_err(|e| format!("cannot read {}: {e}", creds_file.display()))?;
    let bind = &state.config.bind;
    Ok(format!(
        "\nexportd demo is ready\n  admin page: http://{bind}/{DEMO_ORG}/admin/\n{creds}  \
         try:       curl -H \"Authorization: Bearer $TOKEN\" http://{bind}/{DEMO_ORG}/v2/c_visits?limit=2\n"
    ))
}

fn create(store: &Store) -> crate::fault::Result<String> {
    store.create_org(DEMO_ORG, "Demo Research Org", Some(10 * 1024 * 1024 * 1024))?;
    let password = crate::crypto::random_hex(8);
    let token = crate::auth::new_token();
    let admin = Account {
        id: ObjectId::new(),
        org: DEMO_ORG.into(),
        email: DEMO_EMAIL.into(),
        name: Some("Demo Administrator".into()),
        roles: vec![ADMIN_ROLE.into()],
        password_hash: Some(crate::auth::passwords::hash(&password)),
        created: crate::model::ids::now_iso(),
    };
    let rec = TokenRec {
        id: ObjectId::new(),
        org: DEMO_ORG.into(),
        account: admin.id,
        created: admin.created.clone(),
    };
    store.create_account(&admin, &crate::crypto::sha256(token.as_bytes()), &rec)?;

    let sites = parse_definition(
        json!({"name": "c_site", "pluralName": "c_sites", "label": "Site", "properties": [
            {"name": "c_name", "type": "String", "required": true},
            {"name": "c_country", "type": "String"},
        ]}),
        &[],
    )?;
    store.put_object(DEMO_ORG, &sites)?;
    let visits = parse_definition(
        json!({"name": "c_visit", "pluralName": "c_visits", "label": "Visit", "properties": [
            {"name": "c_participant", "type": "String", "required": true},
            {"name": "c_site", "type": "Reference", "sourceObject": "c_site"},
            {"name": "c_visit_date", "type": "Date"},
            {"name": "c_steps", "type": "Number"},
            {"name": "c_completed", "type": "Boolean"},
            {"name": "c_tags", "type": "String", "array": true},
            {"name": "c_vitals", "type": "Document", "properties": [
                {"name": "c_heart_rate", "type": "Number"},
                {"name": "c_systolic", "type": "Number"},
                {"name": "c_diastolic", "type": "Number"}]},
            {"name": "c_notes", "type": "String", "optional": true},
            {"name": "c_consent", "type": "File"},
        ]}),
        std::slice::from_ref(&sites),
    )?;
    store.put_object(DEMO_ORG, &visits)?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let countries = ["US", "GB", "DE", "FR", "JP", "BR", "CA", "AU"];
    let cities = [
        "Boston", "London", "Berlin", "Lyon", "Osaka", "Recife", "Toronto", "Perth",
    ];
    let site_docs: Vec<StoredDoc> = (0..8)
        .map(|i| doc(admin.id, json!({"c_name": format!("{} Clinical Site", cities[i]), "c_country": countries[i]})))
        .collect();
    store.insert_docs(DEMO_ORG, "c_site", &site_docs)?;
    let tags = [
        "baseline",
        "follow-up",
        "remote",
        "in-clinic",
        "adverse-event",
        "screening",
    ];
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z").expect("valid date");
    let mut batch = Vec::with_capacity(1000);
    let mut first_ids = Vec::new();
    for i in 0..DEMO_DOCS {
        let site = &site_docs[rng.gen_range(0..site_docs.len())];
        let when = start + chrono::Duration::minutes(rng.gen_range(0..60 * 24 * 320));
        let ntags = rng.gen_range(0..3);
        let t: Vec<&str> = (0..ntags)
            .map(|_| tags[rng.gen_range(0..tags.len())])
            .collect();
        let mut props = json!({
            "c_participant": format!("P-{:05}", rng.gen_range(1..2500)),
            "c_site": site.id.to_hex(),
            "c_visit_date": iso(when.with_timezone(&chrono::Utc)),
            "c_steps": rng.gen_range(800..18000),
            "c_completed": rng.gen_bool(0.8),
            "c_tags": t,
            "c_vitals": {"c_heart_rate": rng.gen_range(52..110), "c_systolic": rng.gen_range(100..150), "c_diastolic": rng.gen_range(60..95)},
        });
        if rng.gen_bool(0.2) {
            props["c_notes"] = json!("Participant reported mild fatigue; follow up next visit.");
        }
        let d = doc(admin.id, props);
        if i < 5 {
            first_ids.push(d.id);
        }
        batch.push(d);
        if batch.len() == 1000 {
            store.insert_docs(DEMO_ORG, "c_visit", &batch)?;
            batch.clear();
        }
    }
    store.insert_docs(DEMO_ORG, "c_visit", &batch)?;
    // a few consent forms
    for (n, id) in first_ids.iter().enumerate() {
        let text = format!(
            "Informed consent, visit document {id}\nSigned by participant {n} on 2026-02-0{}.\n",
            n + 1
        );
        let mut w = store.blob_writer(DEMO_ORG, BlobKind::File)?;
        w.write_all(text.as_bytes())?;
        let meta = w.finish()?;
        let mut d = store
            .get_doc(DEMO_ORG, "c_visit", *id)?
            .expect("just inserted");
        let facet = crate::model::files::facet(
            "text/plain",
            &format!("consent-{n}.txt"),
            meta.size,
            &meta.sha256,
            meta.id,
        );
        d.props.insert("c_consent".into(), facet);
        store.attach_file(DEMO_ORG, "c_visit", &d, &meta, None, None)?;
    }
    store.flush()?;
    Ok(format!(
        "  email:      {DEMO_EMAIL}\n  password:   {password}\n  API token:  {token}\n"
    ))
}

fn doc(owner: ObjectId, props: Value) -> StoredDoc {
    let Value::Object(props) = props else {
        unreachable!("demo documents are objects")
    };
    StoredDoc {
        id: ObjectId::new(),
        created: crate::model::ids::now_iso(),
        updated: None,
        creator: owner,
        owner,
        props,
    }
}
