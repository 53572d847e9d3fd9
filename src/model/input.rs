//! Reading a JSON request object field by field, collecting one sub-fault per bad field with
//! its `path`, and refusing fields nobody asked for.

use crate::fault::{Fault, Faults};
use serde_json::{Map, Value};

pub struct Fields<'a> {
    map: Map<String, Value>,
    base: String,
    pub faults: &'a mut Faults,
}

pub fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

impl<'a> Fields<'a> {
    pub fn new(map: Map<String, Value>, base: &str, faults: &'a mut Faults) -> Fields<'a> {
        Fields {
            map,
            base: base.to_string(),
            faults,
        }
    }

    /// Expects `v` to be an object; reports a fault at `base` otherwise.
    pub fn from_value(v: Value, base: &str, faults: &'a mut Faults) -> Option<Fields<'a>> {
        match v {
            Value::Object(m) => Some(Fields::new(m, base, faults)),
            _ => {
                let at = if base.is_empty() { "body" } else { base };
                faults.bad(at, "Expected a JSON object");
                None
            }
        }
    }

    pub fn path(&self, name: &str) -> String {
        join(&self.base, name)
    }

    pub fn bad(&mut self, name: &str, msg: impl Into<String>) {
        let p = self.path(name);
        self.faults.bad(&p, msg);
    }

    pub fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A string of 1..=max chars (after trimming nothing). Null counts as absent.
    pub fn string(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        match self.take(name) {
            None | Some(Value::Null) => {
                if required {
                    self.bad(name, format!("{name} is required"));
                }
                None
            }
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n == 0 && required {
                    self.bad(name, format!("{name} must not be empty"));
                    None
                } else if n > max {
                    self.bad(name, format!("{name} must be at most {max} characters"));
                    None
                } else {
                    Some(s)
                }
            }
            Some(_) => {
                self.bad(name, format!("{name} must be a string"));
                None
            }
        }
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.take(name) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.bad(name, format!("{name} must be a boolean"));
                None
            }
        }
    }

    pub fn number(&mut self, name: &str) -> Option<f64> {
        match self.take(name) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.bad(name, format!("{name} must be a number"));
                None
            }
        }
    }

    /// An array of strings with at most `max_items` entries of at most `max_len` chars.
    pub fn strings(&mut self, name: &str, max_items: usize, max_len: usize) -> Option<Vec<String>> {
        match self.take(name) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    self.bad(name, format!("{name} may hold at most {max_items} items"));
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, it) in items.into_iter().enumerate() {
                    match it {
                        Value::String(s) if !s.is_empty() && s.chars().count() <= max_len => {
                            out.push(s)
                        }
                        _ => {
                            let p = format!("{}[{i}]", self.path(name));
                            self.faults.bad(
                                &p,
                                format!("must be a non-empty string of at most {max_len} chars"),
                            );
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.bad(name, format!("{name} must be an array of strings"));
                None
            }
        }
    }

    /// Every field not taken is unknown: one fault each.
    pub fn finish(self) {
        for k in self.map.keys() {
            let p = join(&self.base, k);
            self.faults.push(
                Fault::new(
                    crate::fault::Category::Validation,
                    "unknownField",
                    format!("Unknown field {k}"),
                )
                .at(p),
            );
        }
    }

    /// Refuses the given fields as read-only if present.
    pub fn read_only(&mut self, names: &[&str]) {
        for n in names {
            if self.map.remove(*n).is_some() {
                let p = self.path(n);
                self.faults.push(
                    Fault::new(
                        crate::fault::Category::Validation,
                        "readOnly",
                        format!("{n} is read-only"),
                    )
                    .at(p),
                );
            }
        }
    }
}
