//! The one error type of exportd: a Cortex fault (SPEC §1). Every error that reaches a client
//! is turned into a `Fault` here, so the category → code/status table lives in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// The categories of SPEC §1 with their `code` and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    InvalidArgument,
    Validation,
    AccessDenied,
    Unauthorized,
    NotFound,
    Exists,
    Conflict,
    TooLarge,
    Throttled,
    Expired,
    Error,
    UnsupportedOperation,
    Accepted,
    Cancelled,
}

impl Category {
    pub fn code(self) -> &'static str {
        match self {
            Category::InvalidArgument => "kInvalidArgument",
            Category::Validation => "kValidationError",
            Category::AccessDenied => "kAccessDenied",
            Category::Unauthorized => "kUnauthorized",
            Category::NotFound => "kNotFound",
            Category::Exists => "kExists",
            Category::Conflict => "kConflict",
            Category::TooLarge => "kRequestTooLarge",
            Category::Throttled => "kThrottled",
            Category::Expired => "kExpired",
            Category::Error => "kError",
            Category::UnsupportedOperation => "kUnsupportedOperation",
            Category::Accepted => "kAccepted",
            Category::Cancelled => "kCancelled",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Category::InvalidArgument | Category::Validation | Category::UnsupportedOperation => {
                400
            }
            Category::AccessDenied => 403,
            Category::Unauthorized => 401,
            Category::NotFound => 404,
            Category::Exists | Category::Conflict => 409,
            Category::TooLarge => 413,
            Category::Throttled => 429,
            Category::Expired => 410,
            Category::Error => 500,
            Category::Cancelled => 400,
            Category::Accepted => 202,
        }
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Category::InvalidArgument => "invalidArgument",
            Category::Validation => "validation",
            Category::AccessDenied => "accessDenied",
            Category::Unauthorized => "unauthorized",
            Category::NotFound => "notFound",
            Category::Exists => "exists",
            Category::Conflict => "conflict",
            Category::TooLarge => "tooLarge",
            Category::Throttled => "throttled",
            Category::Expired => "expired",
            Category::Error => "error",
            Category::UnsupportedOperation => "unsupportedOperation",
            Category::Accepted => "accepted",
            Category::Cancelled => "cancelled",
        }
    }
}

/// A fault as serialized on the wire. Boxed so that `Result<T, Fault>` stays small.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Fault(pub Box<FaultBody>);

impl std::ops::Deref for Fault {
    type Target = FaultBody;
    fn deref(&self) -> &FaultBody {
        &self.0
    }
}

impl std::ops::DerefMut for Fault {
    fn deref_mut(&mut self) -> &mut FaultBody {
        &mut self.0
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct FaultBody {
    pub object: String,
    pub name: String,
    pub code: String,
    #[serde(rename = "errCode")]
    pub err_code: String,
    pub status: u16,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub faults: Vec<Fault>,
}

impl Fault {
    /// `detail` is the last part of the errCode: `cortex.<category>.<detail>`.
    pub fn new(cat: Category, detail: &str, message: impl Into<String>) -> Fault {
        Fault(Box::new(FaultBody {
            object: "fault".into(),
            name: if cat == Category::Validation {
                "validation".into()
            } else {
                "error".into()
            },
            code: cat.code().into(),
            err_code: format!("cortex.{}.{}", cat.prefix(), detail),
            status: cat.status(),
            message: message.into(),
            path: None,
            index: None,
            faults: Vec::new(),
        }))
    }

    pub fn at(mut self, path: impl Into<String>) -> Fault {
        self.path = Some(path.into());
        self
    }

    pub fn with_index(mut self, index: u64) -> Fault {
        self.index = Some(index);
        self
    }

    /// A validation fault wrapping one sub-fault per bad field.
    pub fn validation(faults: Vec<Fault>) -> Fault {
        let message = match faults.as_slice() {
            [one] => one.message.clone(),
            many => format!("{} validation errors", many.len()),
        };
        let mut f = Fault::new(Category::Validation, "failed", message);
        f.faults = faults;
        f
    }

    pub fn invalid(detail: &str, message: impl Into<String>) -> Fault {
        Fault::new(Category::InvalidArgument, detail, message)
    }
    pub fn not_found(what: &str) -> Fault {
        Fault::new(
            Category::NotFound,
            "instance",
            format!("{what} was not found"),
        )
    }
    pub fn unauthorized(detail: &str, message: impl Into<String>) -> Fault {
        Fault::new(Category::Unauthorized, detail, message)
    }
    pub fn access_denied(detail: &str, message: impl Into<String>) -> Fault {
        Fault::new(Category::AccessDenied, detail, message)
    }
    pub fn conflict(detail: &str, message: impl Into<String>) -> Fault {
        Fault::new(Category::Conflict, detail, message)
    }
    pub fn exists(detail: &str, message: impl Into<String>) -> Fault {
        Fault::new(Category::Exists, detail, message)
    }
    pub fn too_large(message: impl Into<String>) -> Fault {
        Fault::new(Category::TooLarge, "body", message)
    }
    pub fn storage_limit() -> Fault {
        Fault::new(
            Category::AccessDenied,
            "storageLimitExceeded",
            "The org's storage limit has been reached",
        )
    }
    /// An internal error: logged in full, answered with a message that leaks nothing.
    pub fn internal(context: &str, err: impl fmt::Display) -> Fault {
        tracing::error!(error = %err, "{context}");
        Fault::new(Category::Error, "unspecified", context.to_string())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.err_code, self.message)?;
        if let Some(p) = &self.path {
            write!(f, " (at {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Fault {}

impl ResponseError for Fault {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        crate::metrics::get().fault(&self.err_code);
        HttpResponse::build(self.status_code())
            .insert_header(("Cache-Control", "no-store"))
            .json(self)
    }
}

pub type Result<T, E = Fault> = std::result::Result<T, E>;

impl Fault {
    /// An I/O error: a fault carried inside it (a writer's, e.g. storageFull from the blob
    /// store) as it is, a full disk as storageFull, anything else internal.
    pub fn from_io(context: &str, e: std::io::Error) -> Fault {
        if let Some(f) = e.get_ref().and_then(|inner| inner.downcast_ref::<Fault>()) {
            return f.clone();
        }
        if e.kind() == std::io::ErrorKind::StorageFull {
            tracing::error!(error = %e, "{context}: storage is full");
            return Fault::new(
                Category::Error,
                "storageFull",
                "The server's storage is full",
            );
        }
        Fault::internal(context, e)
    }
}

impl From<sled::Error> for Fault {
    fn from(e: sled::Error) -> Fault {
        match e {
            sled::Error::Io(io) => Fault::from_io("storage error", io),
            other => Fault::internal("storage error", other),
        }
    }
}

impl From<sled::transaction::TransactionError<Fault>> for Fault {
    fn from(e: sled::transaction::TransactionError<Fault>) -> Fault {
        match e {
            sled::transaction::TransactionError::Abort(f) => f,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

impl From<actix_web::error::BlockingError> for Fault {
    fn from(e: actix_web::error::BlockingError) -> Fault {
        Fault::internal("internal error", e)
    }
}

/// Collects the sub-faults of a validation; `finish` turns them into one fault or Ok.
#[derive(Default, Debug)]
pub struct Faults(pub Vec<Fault>);

impl Faults {
    pub fn push(&mut self, f: Fault) {
        self.0.push(f);
    }
    pub fn bad(&mut self, path: &str, message: impl Into<String>) {
        self.0
            .push(Fault::new(Category::Validation, "invalidValue", message).at(path));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Fault::validation(self.0))
        }
    }
}
