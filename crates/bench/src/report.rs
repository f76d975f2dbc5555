//! Scenario results: an ordered list of named figures printed as a
//! human-readable summary or as one flat JSON object.

/// One figure of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Text(String),
}

/// The result of one scenario run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: String,
    pub fields: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            fields: Vec::new(),
        }
    }

    pub fn num(&mut self, name: &str, v: f64) {
        self.fields.push((name.to_string(), Value::Num(v)));
    }

    pub fn text(&mut self, name: &str, v: &str) {
        self.fields
            .push((name.to_string(), Value::Text(v.to_string())));
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A readable multi-line summary.
    pub fn summary(&self) -> String {
        let mut out = format!("== {} ==\n", self.scenario);
        for (k, v) in &self.fields {
            match v {
                Value::Num(n) => out.push_str(&format!("  {k:<28} {n:.2}\n")),
                Value::Text(t) => out.push_str(&format!("  {k:<28} {t}\n")),
            }
        }
        out
    }

    /// One JSON object: `{"scenario": ..., "<field>": ...}`.
    pub fn json(&self) -> String {
        let mut out = format!("{{\"scenario\":{}", json_string(&self.scenario));
        for (k, v) in &self.fields {
            out.push(',');
            out.push_str(&json_string(k));
            out.push(':');
            match v {
                Value::Num(n) if n.is_finite() => out.push_str(&format!("{n}")),
                Value::Num(_) => out.push_str("null"),
                Value::Text(t) => out.push_str(&json_string(t)),
            }
        }
        out.push('}');
        out
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
