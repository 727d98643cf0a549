//! Decode one message into a validated record, or reject it, as `pipeline/core/decode.py`.

use std::borrow::Cow;

use hashbrown::HashMap;

use crate::json::{Parser, Value};
use crate::normalize::{self, Digits, Numbering};
use crate::party::{self, PartyClass};
use crate::time::{self, Dialect};

pub const MAX_RECORD_ID_LENGTH: usize = 128;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Msisdn,
    Imsi,
    Imei,
    Time,
    Text,
    Count,
    TextOrCount,
    Location,
    LocationChanges,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "msisdn" => Kind::Msisdn,
            "imsi" => Kind::Imsi,
            "imei" => Kind::Imei,
            "time" => Kind::Time,
            "text" => Kind::Text,
            "count" => Kind::Count,
            "text_or_count" => Kind::TextOrCount,
            "location" => Kind::Location,
            "location_changes" => Kind::LocationChanges,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Served,
    Number,
    Nobody,
}

#[derive(Clone, Debug)]
pub struct FieldInfo {
    pub name: String,
    pub kind: Kind,
    pub owner: Owner,
    /// `"name":` as JSON, ready to write.
    pub json_key: Vec<u8>,
}

/// The field catalog (`pipeline/core/fields.py`) and the record types.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub fields: Vec<FieldInfo>,
    /// Field ids by name length (names of one length are few: a short scan beats hashing).
    by_length: Vec<Vec<u8>>,
    pub voice_types: Vec<String>,
    pub sms_types: Vec<String>,
    pub mo_types: Vec<String>,
    pub record_id: Option<u8>,
    served_msisdn: Option<u8>,
}

pub const MAX_FIELDS: usize = 64;

impl Catalog {
    pub fn new(
        fields: Vec<(String, Kind, Owner)>,
        voice_types: Vec<String>,
        sms_types: Vec<String>,
        mo_types: Vec<String>,
    ) -> Result<Catalog, String> {
        if fields.len() >= MAX_FIELDS {
            return Err(format!(
                "the native engine takes at most {} fields",
                MAX_FIELDS - 1
            ));
        }
        let mut by_name = HashMap::new();
        let mut infos = Vec::new();
        for (i, (name, kind, owner)) in fields.into_iter().enumerate() {
            let mut json_key = Vec::new();
            crate::json::write_str(&mut json_key, &name);
            json_key.push(b':');
            by_name.insert(name.clone(), i as u8);
            infos.push(FieldInfo {
                name,
                kind,
                owner,
                json_key,
            });
        }
        let mut by_length: Vec<Vec<u8>> = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            let length = info.name.len();
            if by_length.len() <= length {
                by_length.resize(length + 1, Vec::new());
            }
            by_length[length].push(i as u8);
        }
        let record_id = by_name.get("recordId").copied();
        let served_msisdn = by_name.get("servedMSISDN").copied();
        Ok(Catalog {
            fields: infos,
            by_length,
            voice_types,
            sms_types,
            mo_types,
            record_id,
            served_msisdn,
        })
    }

    #[inline]
    pub fn id(&self, name: &str) -> Option<u8> {
        let candidates = self.by_length.get(name.len())?;
        candidates
            .iter()
            .copied()
            .find(|&i| self.fields[i as usize].name == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

fn reject(code: &'static str, message: impl Into<String>, field: Option<&str>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
        field: field.map(str::to_owned),
    }
}

/// A validated record. Field values borrow from the message bytes.
#[derive(Debug)]
pub struct Record<'a> {
    /// Catalog fields in the order of their first occurrence, each with its last value.
    pub fields: Vec<(u8, Value<'a>)>,
    slots: [u8; MAX_FIELDS],
    pub record_id: Cow<'a, str>,
    pub is_voice: bool,
    pub is_mo: bool,
    /// Normalized numbers of the MSISDN-kind fields present, in field order.
    pub numbers: Vec<(u8, Digits)>,
    /// The class of every party-number field present that is no MSISDN, in field order.
    pub parties: Vec<(u8, PartyClass)>,
    pub imsi: Option<Digits>,
    pub imei: Option<Digits>,
    pub mcc_mnc: Option<Cow<'a, str>>,
    /// Every validated time, microseconds since the epoch.
    pub times: Vec<i64>,
}

impl<'a> Record<'a> {
    pub fn get(&self, field: Option<u8>) -> Option<&Value<'a>> {
        let slot = self.slots[field? as usize];
        if slot == 0 {
            None
        } else {
            Some(&self.fields[slot as usize - 1].1)
        }
    }

    /// `obj.get(name) is None`: absent or null.
    fn missing(&self, field: Option<u8>) -> bool {
        matches!(self.get(field), None | Some(Value::Null))
    }

    pub fn number(&self, field: u8) -> Option<&Digits> {
        self.numbers
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, d)| d)
    }

    /// The class of a party-number field whose value is no MSISDN.
    pub fn party(&self, field: u8) -> Option<PartyClass> {
        self.parties
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| *c)
    }

    pub fn served_msisdn(&self, catalog: &Catalog) -> Option<&Digits> {
        self.number(catalog.served_msisdn?)
    }

    /// The event's start and end in epoch seconds (earliest and latest time; 0 without any).
    pub fn span(&self) -> (f64, f64) {
        match (self.times.iter().min(), self.times.iter().max()) {
            (Some(&lo), Some(&hi)) => (time::timestamp(lo), time::timestamp(hi)),
            _ => (0.0, 0.0),
        }
    }
}

/// The decoder's settings.
#[derive(Clone, Debug)]
pub struct Decoder {
    pub catalog: Catalog,
    pub numbering: Numbering,
    pub dialect: Dialect,
    pub max_bytes: usize,
}

fn location_problem(value: Option<&Value<'_>>) -> Option<Rejection> {
    let field = Some("location");
    let Some(value @ Value::Object(_)) = value else {
        return Some(reject("wrong_type", "'location' must be an object", field));
    };
    let ok = match value.get("mccMnc") {
        Some(Value::Str(m)) => {
            (m.len() == 5 || m.len() == 6) && m.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    if !ok {
        return Some(reject(
            "bad_value",
            "'location.mccMnc' must be 5-6 digits",
            field,
        ));
    }
    for name in ["locationAreaCode", "cellId"] {
        match value.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::Int(part)) => {
                if !(0..=0xFFFF).contains(part) {
                    return Some(reject(
                        "bad_value",
                        format!("'location.{name}' must be 0-65535"),
                        field,
                    ));
                }
            }
            Some(_) => {
                return Some(reject(
                    "wrong_type",
                    format!("'location.{name}' must be an integer"),
                    field,
                ))
            }
        }
    }
    None
}

impl Decoder {
    /// Decode and validate one message value.
    pub fn decode<'a>(&self, raw: Option<&'a [u8]>) -> Result<Record<'a>, Rejection> {
        let Some(raw) = raw else {
            return Err(reject("null_value", "the message has no value", None));
        };
        if raw.len() > self.max_bytes {
            return Err(reject(
                "oversize",
                format!("the message exceeds {} bytes", self.max_bytes),
                None,
            ));
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(reject(
                "invalid_utf8",
                "the message is not valid UTF-8",
                None,
            ));
        };
        let invalid = || reject("invalid_json", "the message is not valid JSON", None);
        let mut parser = Parser::new(text);
        parser.skip_ws();
        if parser.peek() != Some(b'{') {
            parser.skip_value().map_err(|_| invalid())?;
            parser.finish().map_err(|_| invalid())?;
            return Err(reject(
                "not_an_object",
                "the JSON value is not an object",
                None,
            ));
        }
        let (fields, slots) = self.members(&mut parser).map_err(|_| invalid())?;
        parser.finish().map_err(|_| invalid())?;
        self.validate(fields, slots)
    }

    #[allow(clippy::type_complexity)]
    fn members<'a>(
        &self,
        parser: &mut Parser<'a>,
    ) -> Result<(Vec<(u8, Value<'a>)>, [u8; MAX_FIELDS]), crate::json::SyntaxError> {
        parser.expect(b'{')?;
        parser.enter()?;
        let mut fields: Vec<(u8, Value<'a>)> = Vec::with_capacity(24);
        let mut slots = [0u8; MAX_FIELDS];
        if parser.object_start()? {
            loop {
                let key = parser.key()?;
                match self.catalog.id(&key) {
                    Some(id) => {
                        let value = parser.value()?;
                        let slot = slots[id as usize];
                        if slot == 0 {
                            fields.push((id, value));
                            slots[id as usize] = fields.len() as u8;
                        } else {
                            fields[slot as usize - 1].1 = value;
                        }
                    }
                    None => parser.skip_value()?,
                }
                if !parser.object_next()? {
                    break;
                }
            }
        }
        parser.leave();
        Ok((fields, slots))
    }

    fn validate<'a>(
        &self,
        fields: Vec<(u8, Value<'a>)>,
        slots: [u8; MAX_FIELDS],
    ) -> Result<Record<'a>, Rejection> {
        let catalog = &self.catalog;
        let get = |name: &str| -> Option<&Value<'a>> {
            let id = catalog.id(name)?;
            let slot = slots[id as usize];
            if slot == 0 {
                None
            } else {
                Some(&fields[slot as usize - 1].1)
            }
        };
        let record_id = match get("recordId") {
            None | Some(Value::Null) => {
                return Err(reject(
                    "missing_field",
                    "'recordId' is required",
                    Some("recordId"),
                ))
            }
            Some(Value::Str(id)) => id.clone(),
            Some(_) => {
                return Err(reject(
                    "wrong_type",
                    "'recordId' must be a string",
                    Some("recordId"),
                ))
            }
        };
        let length = record_id.chars().count();
        if !(1..=MAX_RECORD_ID_LENGTH).contains(&length) {
            return Err(reject(
                "bad_value",
                "'recordId' must be 1-128 characters",
                Some("recordId"),
            ));
        }
        let record_type = match get("recordType") {
            None | Some(Value::Null) => {
                return Err(reject(
                    "missing_field",
                    "'recordType' is required",
                    Some("recordType"),
                ))
            }
            Some(Value::Str(kind)) => kind.clone(),
            Some(_) => {
                return Err(reject(
                    "wrong_type",
                    "'recordType' must be a string",
                    Some("recordType"),
                ))
            }
        };
        let is_voice = catalog.voice_types.iter().any(|t| *t == record_type);
        if !is_voice && !catalog.sms_types.iter().any(|t| *t == record_type) {
            return Err(reject(
                "unknown_record_type",
                "'recordType' is not supported",
                Some("recordType"),
            ));
        }
        let is_mo = catalog.mo_types.iter().any(|t| *t == record_type);
        let mut record = Record {
            fields,
            slots,
            record_id,
            is_voice,
            is_mo,
            numbers: Vec::new(),
            parties: Vec::new(),
            imsi: None,
            imei: None,
            mcc_mnc: None,
            times: Vec::new(),
        };
        self.check_fields(&mut record)?;
        self.required(&record)?;
        Ok(record)
    }

    fn check_fields(&self, record: &mut Record<'_>) -> Result<(), Rejection> {
        let mut numbers = Vec::new();
        let mut parties = Vec::new();
        let mut times = Vec::new();
        let mut imsi = None;
        let mut imei = None;
        let mut mcc_mnc = None;
        for (id, value) in &record.fields {
            let info = &self.catalog.fields[*id as usize];
            let name = info.name.as_str();
            let field = Some(name);
            if let Value::Null = value {
                continue;
            }
            match info.kind {
                Kind::Msisdn => {
                    let Value::Str(text) = value else {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string"),
                            field,
                        ));
                    };
                    match self.numbering.msisdn(text) {
                        Some(number) => numbers.push((*id, number)),
                        // Another party's service code, short number or sender name: no
                        // reason to lose the record (only the served identity is).
                        None if info.owner == Owner::Number => {
                            parties.push((*id, party::classify(text)));
                        }
                        None => {
                            return Err(reject(
                                "bad_msisdn",
                                format!("'{name}' is not a valid MSISDN"),
                                field,
                            ))
                        }
                    }
                }
                Kind::Time => {
                    let Value::Str(text) = value else {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string"),
                            field,
                        ));
                    };
                    match time::parse_time(text, self.dialect) {
                        Some(moment) => times.push(moment),
                        None => {
                            return Err(reject(
                                "bad_timestamp",
                                format!("'{name}' is not RFC 3339 with offset"),
                                field,
                            ))
                        }
                    }
                }
                Kind::Text => {
                    if !matches!(value, Value::Str(_)) {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string"),
                            field,
                        ));
                    }
                }
                Kind::Count => match value {
                    Value::Int(count) if *count < 0 => {
                        return Err(reject(
                            "bad_value",
                            format!("'{name}' must not be negative"),
                            field,
                        ))
                    }
                    Value::Int(_) => {}
                    _ => {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be an integer"),
                            field,
                        ))
                    }
                },
                Kind::Imsi => {
                    let Value::Str(text) = value else {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string"),
                            field,
                        ));
                    };
                    imsi = normalize::imsi(text);
                    if imsi.is_none() {
                        return Err(reject(
                            "bad_imsi",
                            format!("'{name}' is not a valid IMSI"),
                            field,
                        ));
                    }
                }
                Kind::Imei => {
                    let Value::Str(text) = value else {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string"),
                            field,
                        ));
                    };
                    imei = normalize::imei(text);
                    if imei.is_none() {
                        return Err(reject(
                            "bad_imei",
                            format!("'{name}' is not a valid IMEI"),
                            field,
                        ));
                    }
                }
                Kind::TextOrCount => {
                    if !matches!(value, Value::Str(_) | Value::Int(_)) {
                        return Err(reject(
                            "wrong_type",
                            format!("'{name}' must be a string or integer"),
                            field,
                        ));
                    }
                }
                Kind::Location => {
                    if let Some(problem) = location_problem(Some(value)) {
                        return Err(problem);
                    }
                    if let Some(Value::Str(m)) = value.get("mccMnc") {
                        mcc_mnc = Some(m.clone());
                    }
                }
                Kind::LocationChanges => self.location_changes(value, &mut times)?,
            }
        }
        record.numbers = numbers;
        record.parties = parties;
        record.times = times;
        record.imsi = imsi;
        record.imei = imei;
        record.mcc_mnc = mcc_mnc;
        Ok(())
    }

    fn location_changes(&self, value: &Value<'_>, times: &mut Vec<i64>) -> Result<(), Rejection> {
        let field = Some("changeOfLocation");
        let Value::Array(changes) = value else {
            return Err(reject(
                "wrong_type",
                "'changeOfLocation' must be an array",
                field,
            ));
        };
        for change in changes {
            if !matches!(change, Value::Object(_)) {
                return Err(reject(
                    "wrong_type",
                    "'changeOfLocation' items must be objects",
                    field,
                ));
            }
            if let Some(problem) = location_problem(change.get("location")) {
                return Err(reject(
                    problem.code,
                    format!("'changeOfLocation': {}", problem.message),
                    field,
                ));
            }
            let parsed = match change.get("changeTime") {
                Some(Value::Str(text)) => time::parse_time(text, self.dialect),
                _ => None,
            };
            match parsed {
                Some(moment) => times.push(moment),
                None => {
                    return Err(reject(
                        "bad_timestamp",
                        "'changeOfLocation.changeTime' is not RFC 3339 with offset",
                        field,
                    ))
                }
            }
        }
        Ok(())
    }

    fn required(&self, record: &Record<'_>) -> Result<(), Rejection> {
        let id = |name: &str| self.catalog.id(name);
        if record.served_msisdn(&self.catalog).is_none() && record.imsi.is_none() {
            return Err(reject(
                "missing_field",
                "'servedMSISDN' or 'servedIMSI' is required",
                Some("servedMSISDN"),
            ));
        }
        if record.is_voice {
            if record.missing(id("callDuration")) {
                return Err(reject(
                    "missing_field",
                    "'callDuration' is required",
                    Some("callDuration"),
                ));
            }
            if record.missing(id("seizureTime")) && record.missing(id("answerTime")) {
                return Err(reject(
                    "missing_field",
                    "'seizureTime' or 'answerTime' is required",
                    Some("seizureTime"),
                ));
            }
        } else {
            let name = if record.is_mo {
                "originationTime"
            } else {
                "deliveryTime"
            };
            if record.missing(id(name)) {
                return Err(reject(
                    "missing_field",
                    format!("'{name}' is required"),
                    Some(name),
                ));
            }
        }
        Ok(())
    }
}
