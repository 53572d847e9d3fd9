//! Validating a create request (SPEC §4.2): every bad field is a sub-fault with its `path`.

use crate::export::prefix::{PrefixContext, Target, resolve};
use crate::export::record::{ExportRecord, Format, Progress, State};
use crate::fault::{Category, Fault, Faults, Result};
use crate::model::ids::{ObjectId, iso};
use crate::model::input::Fields;
use crate::model::org::Org;
use crate::model::schema::{ObjectDef, RESERVED_OBJECTS};
use crate::query::projection::{check_expand, check_path};
use serde_json::Value;

pub const MAX_WHERE_CHARS: usize = 1024;
pub const MAX_SCRIPT_BYTES: usize = 50 * 1024;
pub const MAX_LIST_ITEMS: usize = 100;

const READ_ONLY: &[&str] = &[
    "_id",
    "object",
    "state",
    "progress",
    "stats",
    "dataFile",
    "fault",
    "created",
    "started",
    "completed",
    "expiresAt",
    "creator",
];

/// What validation needs from the store.
pub trait CreateContext: PrefixContext {
    fn account_exists(&self, id: ObjectId) -> Result<bool>;
    fn catalog(&self) -> Result<Vec<ObjectDef>>;
    /// Whether an afterScript parses (`Err(message)` if not). Never parse in-process: see
    /// `hook::runner::check_syntax`.
    fn check_script(&self, src: &str) -> Result<std::result::Result<(), String>>;
}

/// Parses a create body into a pending record (id, seq and times filled in by the caller).
pub fn parse_create(
    body: Value,
    org: &Org,
    creator: ObjectId,
    ctx: &dyn CreateContext,
) -> Result<(ExportRecord, ObjectDef)> {
    let mut faults = Faults::default();
    let Some(mut f) = Fields::from_value(body, "", &mut faults) else {
        return Err(Fault::validation(faults.0));
    };
    f.read_only(READ_ONLY);
    let label = f.string("label", true, 100);
    let description = f.string("description", false, 255);
    let objects = f.string("objects", true, 100);
    let format_s = f.string("format", false, 100);
    let export_files = f.boolean("exportFiles").unwrap_or(false);
    let zip_files = f.boolean("zipFiles").unwrap_or(false);
    let paths = f.strings("paths", MAX_LIST_ITEMS, 200).unwrap_or_default();
    let include = f
        .strings("include", MAX_LIST_ITEMS, 200)
        .unwrap_or_default();
    let expand = f.strings("expand", MAX_LIST_ITEMS, 200).unwrap_or_default();
    let where_s = f.string("where", false, MAX_WHERE_CHARS);
    let script = f.string("afterScript", false, MAX_SCRIPT_BYTES);
    let principal_s = f.string("principal", false, 24);
    let prefix = f.string("prefix", false, 200);
    let csv_escape = f.boolean("csvEscapeFormulas").unwrap_or(false);
    f.finish();

    let format = match format_s.as_deref() {
        None => Format::Ndjson,
        Some(s) => Format::parse(s).unwrap_or_else(|| {
            faults.bad(
                "format",
                "format must be application/x-ndjson, application/json or text/csv",
            );
            Format::Ndjson
        }),
    };
    let mut def = None;
    if let Some(o) = &objects {
        let singular = o.strip_suffix('s').unwrap_or(o);
        if RESERVED_OBJECTS.contains(&o.as_str()) || RESERVED_OBJECTS.contains(&singular) {
            faults.push(
                Fault::new(
                    Category::Validation,
                    "reservedObject",
                    format!("{o} cannot be exported"),
                )
                .at("objects"),
            );
        } else {
            match ctx.object(o)? {
                Some(d) => def = Some(d),
                None => faults.push(
                    Fault::new(
                        Category::Validation,
                        "unknownObject",
                        format!("No object named {o}"),
                    )
                    .at("objects"),
                ),
            }
        }
    }
    let mut target: Option<Target> = None;
    if let Some(d) = &def {
        match resolve(d, prefix.as_deref(), ctx)? {
            Ok(t) => target = Some(t),
            Err(m) => {
                faults.bad("prefix", m);
                // the other fields are still checked, against the object itself
                target = Some(Target::Object(d.clone()));
            }
        }
    }
    if let Some(t) = &target {
        let d = t.shape_def();
        let cat = ctx.catalog()?;
        for (i, p) in paths.iter().enumerate() {
            if let Err(m) = check_path(&d, p, &cat) {
                faults.bad(&format!("paths[{i}]"), m);
            }
        }
        for (i, p) in include.iter().enumerate() {
            if let Err(m) = check_path(&d, p, &cat) {
                faults.bad(&format!("include[{i}]"), m);
            }
        }
        for (i, p) in expand.iter().enumerate() {
            if let Err(m) = check_expand(&d, p, &cat) {
                faults.bad(&format!("expand[{i}]"), m);
            }
        }
        if let Some(w) = &where_s
            && let Err(f) = t.parse_where(w)
        {
            faults.push(f);
        }
    }
    if zip_files && !export_files {
        faults.bad("zipFiles", "zipFiles needs exportFiles");
    }
    if let Some(src) = &script {
        if src.len() > MAX_SCRIPT_BYTES {
            faults.bad(
                "afterScript",
                format!("afterScript is larger than {MAX_SCRIPT_BYTES} bytes"),
            );
        } else if let Err(m) = ctx.check_script(src)? {
            faults.push(
                Fault::new(
                    Category::Validation,
                    "syntax",
                    format!("afterScript does not parse: {m}"),
                )
                .at("afterScript"),
            );
        }
    }
    let mut principal = None;
    if let Some(p) = &principal_s {
        match ObjectId::parse(p) {
            Some(id) if ctx.account_exists(id)? => principal = Some(id),
            _ => faults.bad(
                "principal",
                "principal must be the _id of an account of this org",
            ),
        }
    }
    faults.finish()?;
    let def = def.expect("validated above");
    let created = chrono::Utc::now();
    let ttl_ms = (org.export_ttl_days * 86_400_000.0).round() as i64;
    let rec = ExportRecord {
        id: ObjectId::new(),
        org: org.code.clone(),
        label: label.unwrap_or_default(),
        description,
        state: State::Pending,
        format,
        object: def.name.clone(),
        objects: def.plural_name.clone(),
        export_files,
        zip_files,
        paths,
        include,
        expand,
        where_json: where_s,
        after_script: script,
        principal,
        prefix,
        csv_escape_formulas: csv_escape,
        progress: Progress::default(),
        stats: None,
        data_file: None,
        fault: None,
        created: iso(created),
        started: None,
        completed: None,
        expires_at: iso(created + chrono::Duration::milliseconds(ttl_ms)),
        creator,
        seq: 0,
    };
    Ok((rec, def))
}
