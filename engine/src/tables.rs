//! The consent table and the warrant index in native memory, fed one message at a time
//! with the rules of `pipeline/core/consent.py` and `pipeline/core/warrants.py`.

use hashbrown::HashMap;

use crate::json::{self, Value};
use crate::normalize::{self, Digits, Numbering};
use crate::time::{self, Dialect};
use crate::unknown::{UnknownFields, CONSENT_FIELDS, WARRANT_FIELDS};

/// Why a message was not accepted: a code and a message without any identifier.
pub type Problem = (&'static str, String);

/// The purposes routes ask about, as bit positions (at most 64).
#[derive(Clone, Debug, Default)]
pub struct Purposes {
    pub names: Vec<String>,
}

impl Purposes {
    pub fn bit(&self, name: &str) -> Option<u64> {
        self.names.iter().position(|n| n == name).map(|i| 1u64 << i)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConsentState {
    pub version: u64,
    /// Bit per purpose of [`Purposes`] that the subscriber granted.
    pub granted: u64,
    /// Bit per purpose of [`Purposes`] that the subscriber objected to (GDPR Art. 21).
    pub objected: u64,
    /// `false` for [`UNREADABLE`], the stand-in of a state that could not be read.
    pub readable: bool,
}

/// What the table holds for a subscriber whose latest state could not be read, as
/// `consent.UNREADABLE`: no consent, an objection to every purpose (fail closed).
pub const UNREADABLE: ConsentState = ConsentState {
    version: 0,
    granted: 0,
    objected: u64::MAX,
    readable: false,
};

impl ConsentState {
    /// Whether the subscriber objected to the purpose of this bit.
    pub fn objects(&self, purpose_bit: u64) -> bool {
        self.objected & purpose_bit != 0
    }
}

/// Every subscriber's latest consent; identical states are stored once.
#[derive(Debug)]
pub struct ConsentTable {
    numbering: Numbering,
    dialect: Dialect,
    purposes: Purposes,
    states: HashMap<u64, u32>,
    interned: Vec<ConsentState>,
    by_state: HashMap<ConsentState, u32>,
    /// Messages carrying a field the schema does not define, by name.
    pub unknown: UnknownFields,
}

impl ConsentTable {
    pub fn new(numbering: Numbering, dialect: Dialect, purposes: Purposes) -> Self {
        ConsentTable {
            numbering,
            dialect,
            purposes,
            states: HashMap::new(),
            interned: Vec::new(),
            by_state: HashMap::new(),
            unknown: UnknownFields::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The names of the purposes whose bits are set.
    pub fn granted_names(&self, granted: u64) -> Vec<String> {
        let bits = self.purposes.names.iter().enumerate();
        bits.filter(|(i, _)| granted >> i & 1 == 1)
            .map(|(_, n)| n.clone())
            .collect()
    }

    pub fn get(&self, msisdn: &Digits) -> Option<ConsentState> {
        self.states
            .get(&msisdn.key())
            .map(|&i| self.interned[i as usize])
    }

    fn parse(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(Digits, Option<ConsentState>), Problem> {
        let key = key.ok_or(("missing_key", "consent message has no key".to_owned()))?;
        let subscriber = std::str::from_utf8(key)
            .ok()
            .and_then(|k| self.numbering.msisdn(k));
        let subscriber = subscriber.ok_or((
            "bad_key",
            "consent message key is not a valid MSISDN".to_owned(),
        ))?;
        let Some(value) = value else {
            return Ok((subscriber, None));
        };
        let invalid = (
            "invalid_json",
            "consent message is not valid JSON".to_owned(),
        );
        let text = std::str::from_utf8(value).map_err(|_| invalid.clone())?;
        let obj = json::parse(text).map_err(|_| invalid)?;
        let Value::Object(_) = obj else {
            return Err((
                "not_an_object",
                "consent message is not a JSON object".to_owned(),
            ));
        };
        self.unknown.count(&obj, &CONSENT_FIELDS);
        let body = obj
            .get("msisdn")
            .and_then(Value::as_str)
            .and_then(|m| self.numbering.msisdn(m));
        if body != Some(subscriber) {
            return Err((
                "key_mismatch",
                "consent 'msisdn' is missing or differs from the key".to_owned(),
            ));
        }
        let version = match obj.get("version") {
            Some(Value::Int(v)) if *v >= 0 => *v as u64,
            _ => {
                return Err((
                    "bad_version",
                    "consent 'version' must be a non-negative integer".to_owned(),
                ))
            }
        };
        let updated = obj.get("updatedAt").and_then(Value::as_str);
        if updated
            .and_then(|u| time::parse_time(u, self.dialect))
            .is_none()
        {
            return Err((
                "bad_timestamp",
                "consent 'updatedAt' must be RFC 3339 with offset".to_owned(),
            ));
        }
        let Some(purposes @ Value::Object(_)) = obj.get("purposes") else {
            return Err((
                "bad_purposes",
                "consent 'purposes' must be an object".to_owned(),
            ));
        };
        let mut granted = 0u64;
        for (i, name) in self.purposes.names.iter().enumerate() {
            if purposes.get(name) == Some(&Value::Bool(true)) {
                granted |= 1 << i;
            }
        }
        let objected = self.objections(obj.get("objections")).ok_or((
            "bad_objections",
            "consent 'objections' must be an object of true or false".to_owned(),
        ))?;
        let state = ConsentState {
            version,
            granted,
            objected,
            readable: true,
        };
        Ok((subscriber, Some(state)))
    }

    /// The objection bits of a state's `objections` (absent: none); `None` if unreadable:
    /// not an object, or a value (the last given for its name) that is not true or false.
    fn objections(&self, value: Option<&Value<'_>>) -> Option<u64> {
        let Some(objections) = value else {
            return Some(0);
        };
        let Value::Object(items) = objections else {
            return None;
        };
        let readable = items
            .iter()
            .all(|(name, _)| matches!(objections.get(name), Some(Value::Bool(_))));
        if !readable {
            return None;
        }
        let mut objected = 0u64;
        for (i, name) in self.purposes.names.iter().enumerate() {
            if objections.get(name) == Some(&Value::Bool(true)) {
                objected |= 1 << i;
            }
        }
        Some(objected)
    }

    fn insert(&mut self, subscriber: Digits, state: ConsentState) {
        let index = match self.by_state.get(&state) {
            Some(&i) => i,
            None => {
                let i = self.interned.len() as u32;
                self.interned.push(state);
                self.by_state.insert(state, i);
                i
            }
        };
        self.states.insert(subscriber.key(), index);
    }

    /// Apply one `consent.state` message; the problem if it was not accepted.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Problem> {
        match self.parse(key, value) {
            Err(problem) => {
                // Fail closed: a state we cannot read replaces whatever we held before, with
                // no consent and an objection to every purpose.
                if problem.0 != "missing_key" && problem.0 != "bad_key" {
                    if let Some(key) = key {
                        let text = String::from_utf8_lossy(key);
                        if let Some(subscriber) = self.numbering.msisdn(&text) {
                            self.insert(subscriber, UNREADABLE);
                        }
                    }
                }
                Some(problem)
            }
            Ok((subscriber, None)) => {
                self.states.remove(&subscriber.key());
                None
            }
            Ok((subscriber, Some(state))) => {
                self.insert(subscriber, state);
                None
            }
        }
    }
}

/// Target types of a warrant.
pub const MSISDN: u8 = 0;
pub const IMSI: u8 = 1;
pub const IMEI: u8 = 2;

#[derive(Clone, Debug)]
pub struct Warrant {
    pub liid: String,
    pub targets: Vec<(u8, u64)>,
    pub valid_from: f64,
    pub valid_until: f64,
}

/// The active warrants, indexed by target.
#[derive(Debug)]
pub struct WarrantIndex {
    numbering: Numbering,
    dialect: Dialect,
    by_liid: HashMap<String, Warrant>,
    by_target: HashMap<(u8, u64), Vec<String>>,
    /// Messages carrying a top-level field the schema does not define, by name.
    pub unknown: UnknownFields,
}

impl WarrantIndex {
    pub fn new(numbering: Numbering, dialect: Dialect) -> Self {
        WarrantIndex {
            numbering,
            dialect,
            by_liid: HashMap::new(),
            by_target: HashMap::new(),
            unknown: UnknownFields::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_liid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_liid.is_empty()
    }

    pub fn active(&self) -> bool {
        !self.by_target.is_empty()
    }

    fn target(&self, obj: &Value<'_>) -> Option<(u8, u64)> {
        let Value::Object(_) = obj else { return None };
        let value = obj.get("value")?.as_str()?;
        match obj.get("type")?.as_str()? {
            "msisdn" => self.numbering.msisdn(value).map(|d| (MSISDN, d.key())),
            "imsi" => normalize::imsi(value).map(|d| (IMSI, d.key())),
            "imei" => normalize::imei(value).map(|d| (IMEI, d.key())),
            _ => None,
        }
    }

    fn parse(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(String, Option<Warrant>), Problem> {
        let key = match key {
            Some(key) if !key.is_empty() => key,
            _ => {
                return Err((
                    "missing_key",
                    "warrant message has no key (the LIID)".to_owned(),
                ))
            }
        };
        let liid = String::from_utf8_lossy(key).into_owned();
        let Some(value) = value else {
            return Ok((liid, None));
        };
        let obj = std::str::from_utf8(value)
            .ok()
            .and_then(|text| json::parse(text).ok())
            .ok_or_else(|| ("invalid_json", format!("warrant {liid}: not valid JSON")))?;
        self.unknown.count(&obj, &WARRANT_FIELDS);
        let same = matches!(obj, Value::Object(_))
            && obj.get("liid").and_then(Value::as_str) == Some(&liid);
        if !same {
            return Err((
                "key_mismatch",
                format!("warrant {liid}: 'liid' missing or differs from key"),
            ));
        }
        let raw_targets = match obj.get("targets") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                return Err((
                    "bad_targets",
                    format!("warrant {liid}: 'targets' must be a non-empty list"),
                ))
            }
        };
        let mut targets = Vec::with_capacity(raw_targets.len());
        for raw in raw_targets {
            match self.target(raw) {
                Some(target) => targets.push(target),
                None => return Err(("bad_target", format!("warrant {liid}: a target is invalid"))),
            }
        }
        let when = |name: &str| {
            obj.get(name)
                .and_then(Value::as_str)
                .and_then(|t| time::parse_time(t, self.dialect))
        };
        let (start, end) = match (when("validFrom"), when("validUntil")) {
            (Some(start), Some(end)) if end > start => (start, end),
            _ => {
                return Err((
                    "bad_validity",
                    format!("warrant {liid}: invalid validity span"),
                ))
            }
        };
        Ok((
            liid.clone(),
            Some(Warrant {
                liid,
                targets,
                valid_from: time::timestamp(start),
                valid_until: time::timestamp(end),
            }),
        ))
    }

    fn remove(&mut self, liid: &str) {
        let Some(old) = self.by_liid.remove(liid) else {
            return;
        };
        for target in &old.targets {
            if let Some(list) = self.by_target.get_mut(target) {
                list.retain(|l| l != liid);
                if list.is_empty() {
                    self.by_target.remove(target);
                }
            }
        }
    }

    fn put(&mut self, warrant: Warrant) {
        self.remove(&warrant.liid);
        let mut seen: Vec<(u8, u64)> = Vec::new();
        for target in &warrant.targets {
            if !seen.contains(target) {
                seen.push(*target);
                self.by_target
                    .entry(*target)
                    .or_default()
                    .push(warrant.liid.clone());
            }
        }
        self.by_liid.insert(warrant.liid.clone(), warrant);
    }

    /// Apply one `li.warrants` message; the problem if it was not accepted.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Problem> {
        match self.parse(key, value) {
            Err(problem) => Some(problem),
            Ok((liid, warrant)) => {
                self.remove(&liid);
                if let Some(warrant) = warrant {
                    self.put(warrant);
                }
                None
            }
        }
    }

    /// The LIIDs of warrants matching any of `targets` over the span, sorted (each once).
    pub fn matches(&self, targets: &[(u8, u64)], span: (f64, f64)) -> Vec<&str> {
        let mut hits: Vec<&str> = Vec::new();
        for target in targets {
            if let Some(liids) = self.by_target.get(target) {
                for liid in liids {
                    let warrant = &self.by_liid[liid.as_str()];
                    if warrant.valid_from <= span.1
                        && span.0 < warrant.valid_until
                        && !hits.contains(&liid.as_str())
                    {
                        hits.push(liid.as_str());
                    }
                }
            }
        }
        hits.sort_unstable();
        hits
    }

    pub fn has_target(&self, target: &(u8, u64)) -> bool {
        self.by_target.contains_key(target)
    }
}
