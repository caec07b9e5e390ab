//! When a monitoring reading raises an alarm: at NEWS2 medium or high risk, or when one of the
//! patient's threshold rules fires. The responsible doctor sets the rules per patient, on single
//! parameters (`pulse > 130`, `spo2 < 90`). An alarm names its cause, never the values.

use super::news2::{Risk, Score};
use super::vitals::Vital;
use std::fmt;
use std::str::FromStr;

/// A parameter a rule can watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Param {
    Pulse,
    RespiratoryRate,
    Spo2,
    SystolicBp,
    DiastolicBp,
    Temperature,
}

impl Param {
    pub const ALL: [(Param, &'static str); 6] = [
        (Param::Pulse, "pulse"),
        (Param::RespiratoryRate, "respiratory_rate"),
        (Param::Spo2, "spo2"),
        (Param::SystolicBp, "systolic_bp"),
        (Param::DiastolicBp, "diastolic_bp"),
        (Param::Temperature, "temperature"),
    ];

    pub fn name(self) -> &'static str {
        Param::ALL.iter().find(|(p, _)| *p == self).map_or("", |(_, n)| n)
    }

    /// The value of this parameter in `vital`, if it carries it.
    pub fn of(self, vital: &Vital) -> Option<f64> {
        match (self, vital) {
            (Param::Pulse, Vital::HeartRate(v))
            | (Param::RespiratoryRate, Vital::RespiratoryRate(v))
            | (Param::Spo2, Vital::SpO2(v))
            | (Param::Temperature, Vital::Temperature(v))
            | (Param::SystolicBp, Vital::BloodPressure { systolic: v, .. })
            | (Param::DiastolicBp, Vital::BloodPressure { diastolic: v, .. }) => Some(*v),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
        }
    }

    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Cmp::Gt => value > threshold,
            Cmp::Ge => value >= threshold,
            Cmp::Lt => value < threshold,
            Cmp::Le => value <= threshold,
        }
    }
}

/// A threshold rule on one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rule {
    pub param: Param,
    pub cmp: Cmp,
    pub threshold: f64,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.param.name(), self.cmp.symbol(), self.threshold)
    }
}

impl FromStr for Rule {
    type Err = String;

    /// `PARAM OP NUMBER`, spaces optional: `pulse > 130`, `spo2<90`, `temperature >= 39.5`.
    fn from_str(s: &str) -> Result<Rule, String> {
        let s = s.trim();
        let at = s
            .find(['<', '>'])
            .ok_or_else(|| format!("`{s}` is not a rule: expected PARAMETER OP NUMBER, OP one of > >= < <="))?;
        let name = s[..at].trim();
        let rest = &s[at..];
        let (cmp, num) = if let Some(r) = rest.strip_prefix(">=") {
            (Cmp::Ge, r)
        } else if let Some(r) = rest.strip_prefix("<=") {
            (Cmp::Le, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (Cmp::Gt, r)
        } else {
            (Cmp::Lt, &rest[1..])
        };
        let name = if name == "heart_rate" { "pulse" } else { name };
        let param = Param::ALL.iter().find(|(_, n)| *n == name).map(|(p, _)| *p).ok_or_else(|| {
            let known: Vec<&str> = Param::ALL.iter().map(|(_, n)| *n).collect();
            format!("`{name}` is not a monitored parameter ({})", known.join(", "))
        })?;
        let threshold: f64 = num
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| format!("`{}` is not a number", num.trim()))?;
        Ok(Rule { param, cmp, threshold })
    }
}

/// Why an alarm is raised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cause {
    /// NEWS2 medium or high.
    Risk(Risk),
    /// The patient's rule at this index fired.
    Rule(usize, Rule),
}

/// The alarms a reading raises: the NEWS2 risk of the set it completes (if any) at medium or
/// above, and each of the patient's rules its value breaks.
pub fn causes(score: Option<&Score>, vital: &Vital, rules: &[Rule]) -> Vec<Cause> {
    let mut out = Vec::new();
    if let Some(s) = score {
        if s.risk >= Risk::Medium {
            out.push(Cause::Risk(s.risk));
        }
    }
    for (i, r) in rules.iter().enumerate() {
        if r.param.of(vital).is_some_and(|v| r.cmp.holds(v, r.threshold)) {
            out.push(Cause::Rule(i, *r));
        }
    }
    out
}

impl Cause {
    /// The cause as the chain records it: `news2 medium`, `news2 high`, or the rule's text
    /// (`pulse > 130`). Never a reading's value.
    pub fn text(&self) -> String {
        match self {
            Cause::Risk(r) => format!("news2 {r}"),
            Cause::Rule(_, r) => r.to_string(),
        }
    }
}

/// Checks a recorded alarm cause: `news2 medium`, `news2 high`, or a rule ([`Rule`]).
pub fn check_cause(s: &str) -> Result<(), String> {
    match s.strip_prefix("news2 ") {
        Some("medium" | "high") => Ok(()),
        Some(other) => Err(format!("`news2 {other}` raises no alarm: only medium and high do")),
        None => s.parse::<Rule>().map(|_| ()),
    }
}
