//! Route a decoded record: every output of every route, as `Engine.route` in
//! `pipeline/core/engine.py` (the field-by-field reference interpreter) gives them.

use std::ops::Range;

use crate::decode::{Decoder, Kind, Owner, Record, Rejection};
use crate::json::{self, Value};
use crate::normalize::Digits;
use crate::party::{self, PartyClass, CLASSES};
use crate::pseudocache::PseudonymCache;
use crate::pseudonym::{Pseudonymizer, PSEUDONYM_CHARS};
use crate::tables::{ConsentState, ConsentTable, WarrantIndex, IMEI, IMSI, MSISDN};
use crate::time;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    Keep,
    Drop,
    Pseudonymize,
    Mask(u8),
    Tac,
    LocationArea,
    MccMnc,
    Hour,
}

impl Action {
    pub fn from_name(name: &str, mask_digits: u8) -> Option<Action> {
        Some(match name {
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "pseudonymize" => Action::Pseudonymize,
            "mask" => Action::Mask(mask_digits),
            "generalize:tac" => Action::Tac,
            "generalize:location_area" => Action::LocationArea,
            "generalize:mcc_mnc" => Action::MccMnc,
            "generalize:hour" => Action::Hour,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FieldRule {
    pub consented: Action,
    pub otherwise: Action,
}

/// A billing or analytics route.
#[derive(Debug)]
pub struct RoutePlan {
    pub analytics: bool,
    pub billable_only: bool,
    pub requires_consent: bool,
    /// The purpose as a JSON string (analytics values end with `"purpose": ...`).
    pub purpose_json: Vec<u8>,
    /// This purpose's bit in the consent states.
    pub purpose_bit: u64,
    /// Field rules by catalog id (`None`: not in the allow-list).
    pub rules: Vec<Option<FieldRule>>,
    /// Pseudonymizers of this purpose for msisdn, imsi, imei and party values that are no
    /// MSISDN (indexes into the engine's).
    pub pseudonymizers: [usize; 4],
    /// An objection (Art. 21) withholds the objector's records and drops the other parties'
    /// numbers of objectors (`on_objection = "exclude"`); an override changes no output.
    pub excludes_objections: bool,
    /// Records this route published nothing of, since the engine was built, by reason:
    /// not billable, no consent, an objection (`engine.WITHHELD_REASONS`).
    pub withheld: [u64; 3],
    /// The pseudonymizer of this purpose's keyed record ids (analytics routes); `None`: the
    /// outputs carry the source record id (billing).
    pub record_id_key: Option<usize>,
}

/// Where an output goes: a lawful-intercept route (with its LIID) or a route plan.
#[derive(Debug)]
pub enum Target {
    Intercept { route: usize, liid: String },
    Plan(usize),
}

#[derive(Debug)]
pub struct Output {
    pub target: Target,
    /// Range of the key in the batch buffer; `None`: no key.
    pub key: Option<Range<usize>>,
    pub value: Range<usize>,
    /// Range of this output's keyed record id; `None`: the record's source id.
    pub record_id: Option<Range<usize>>,
}

#[derive(Debug)]
pub struct RecordOutputs {
    pub index: usize,
    pub record_id: Range<usize>,
    pub consent_version: Option<u64>,
    pub outputs: Range<usize>,
}

/// Everything one batch produced, before any Python object exists.
#[derive(Debug, Default)]
pub struct BatchOutputs {
    pub data: Vec<u8>,
    pub outputs: Vec<Output>,
    pub records: Vec<RecordOutputs>,
    pub rejections: Vec<(usize, Rejection)>,
}

pub struct Engine {
    pub decoder: Decoder,
    pub key_prefix: Vec<u8>,
    pub home_networks: Vec<String>,
    pub intercept_routes: usize,
    pub plans: Vec<RoutePlan>,
    pub pseudonymizers: Vec<Pseudonymizer>,
    /// Pseudonyms cached per identifier type (msisdn, imsi, imei), see `pseudocache`.
    pub caches: Vec<PseudonymCache>,
    /// Per plan, its lane in each identifier type's cache.
    pub lanes: Vec<[usize; 3]>,
    /// The last batch's output buffer, kept for the next (see [`Engine::recycle`]).
    pub spare: Vec<u8>,
    /// Catalog ids of the number fields matched against MSISDN warrant targets.
    pub matched_numbers: Vec<bool>,
    /// The policy's `[party_numbers]` action by class index (the msisdn slot is unused).
    pub party_actions: [Action; CLASSES],
    /// Party-number values seen by class index since the last `take_party_counts`.
    pub party_counts: [u64; CLASSES],
}

/// Which identifier type's pseudonymizer party values that are no MSISDN use.
const PARTY_SLOT: usize = 3;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Engine({} routes, keys withheld)",
            self.plans.len() + self.intercept_routes
        )
    }
}

fn id_type(kind: Kind) -> usize {
    match kind {
        Kind::Msisdn => 0,
        Kind::Imsi => 1,
        _ => 2,
    }
}

impl Engine {
    /// Process a batch: decode, look up, route and serialize every message.
    pub fn process_batch(
        &mut self,
        values: &[Option<&[u8]>],
        consent: &ConsentTable,
        warrants: &WarrantIndex,
    ) -> BatchOutputs {
        // ~3.8 outputs of ~500 bytes per record: room for them without growing, in the
        // last batch's buffer (its pages already mapped) when there is one.
        let mut data = std::mem::take(&mut self.spare);
        data.clear();
        data.reserve(values.len() * 2560);
        let mut batch = BatchOutputs {
            data,
            outputs: Vec::with_capacity(values.len() * 4),
            records: Vec::with_capacity(values.len()),
            rejections: Vec::new(),
        };
        // Each record is decoded one ahead, and its identifiers' pseudonym entries asked
        // for then: they arrive while the record before it is routed.
        let mut next = values.first().map(|raw| self.decode_ahead(*raw));
        for (index, raw) in values.iter().enumerate() {
            let current = next.take();
            if let Some(following) = values.get(index + 1) {
                next = Some(self.decode_ahead(*following));
            }
            match current {
                None => {}
                Some(Err(rejection)) => batch.rejections.push((index, rejection)),
                Some(Ok(record)) => {
                    self.count_parties(&record);
                    self.route(
                        index,
                        raw.unwrap_or_default(),
                        &record,
                        consent,
                        warrants,
                        &mut batch,
                    )
                }
            }
        }
        batch
    }

    /// Take a batch's buffer back once its outputs are copied out, for the next batch.
    pub fn recycle(&mut self, batch: BatchOutputs) {
        self.spare = batch.data;
    }

    fn decode_ahead<'a>(&mut self, raw: Option<&'a [u8]>) -> Result<Record<'a>, Rejection> {
        let decoded = self.decoder.decode(raw);
        if let Ok(record) = &decoded {
            for (_, number) in &record.numbers {
                self.caches[0].prefetch(number);
            }
            if let Some(imsi) = &record.imsi {
                self.caches[1].prefetch(imsi);
            }
            if let Some(imei) = &record.imei {
                self.caches[2].prefetch(imei);
            }
        }
        decoded
    }

    /// Count the record's party-number values by class (the metric's source).
    fn count_parties(&mut self, record: &Record<'_>) {
        for (field, _) in &record.numbers {
            if self.decoder.catalog.fields[*field as usize].owner == Owner::Number {
                self.party_counts[PartyClass::Msisdn as usize] += 1;
            }
        }
        for (_, class) in &record.parties {
            self.party_counts[*class as usize] += 1;
        }
    }

    /// The counts by class since the last call, and start again from zero.
    pub fn take_party_counts(&mut self) -> [u64; CLASSES] {
        std::mem::take(&mut self.party_counts)
    }

    fn billable(&self, record: &Record<'_>) -> bool {
        if record.is_mo {
            if !record.is_voice {
                return true;
            }
            let duration = record.get(self.decoder.catalog.id("callDuration"));
            return matches!(duration, Some(Value::Int(d)) if *d > 0);
        }
        match &record.mcc_mnc {
            Some(network) => !self.home_networks.iter().any(|h| h == network),
            None => false,
        }
    }

    fn route(
        &mut self,
        index: usize,
        raw: &[u8],
        record: &Record<'_>,
        consent: &ConsentTable,
        warrants: &WarrantIndex,
        batch: &mut BatchOutputs,
    ) {
        let first_output = batch.outputs.len();
        let states: Vec<Option<ConsentState>> = record
            .numbers
            .iter()
            .map(|(_, number)| consent.get(number))
            .collect();
        let served = record.served_msisdn(&self.decoder.catalog).copied();
        let served_state = match served {
            Some(number) => record
                .numbers
                .iter()
                .position(|(_, n)| *n == number)
                .and_then(|i| states[i]),
            None => None,
        };
        let id_start = batch.data.len();
        batch.data.extend_from_slice(record.record_id.as_bytes());
        let record_id = id_start..batch.data.len();
        if warrants.active() {
            self.intercepts(raw, record, warrants, batch);
        }
        let billable = self.billable(record);
        for plan_index in 0..self.plans.len() {
            let plan = &mut self.plans[plan_index];
            if plan.billable_only && !billable {
                plan.withheld[0] += 1;
                continue;
            }
            let served_ok = served_state.is_some_and(|s| s.granted & plan.purpose_bit != 0);
            if plan.requires_consent && !served_ok {
                plan.withheld[1] += 1;
                continue;
            }
            if plan.excludes_objections && served_state.is_some_and(|s| s.objects(plan.purpose_bit))
            {
                plan.withheld[2] += 1;
                continue;
            }
            let key = self.key(plan_index, record, served, &mut batch.data);
            let keyed_id = self.keyed_record_id(plan_index, record, &mut batch.data);
            let start = batch.data.len();
            self.value(
                plan_index,
                record,
                keyed_id.clone(),
                &states,
                served_ok,
                &mut batch.data,
            );
            batch.outputs.push(Output {
                target: Target::Plan(plan_index),
                key,
                value: start..batch.data.len(),
                record_id: keyed_id,
            });
        }
        batch.records.push(RecordOutputs {
            index,
            record_id,
            consent_version: served_state.filter(|s| s.readable).map(|s| s.version),
            outputs: first_output..batch.outputs.len(),
        });
    }

    fn intercepts(
        &self,
        raw: &[u8],
        record: &Record<'_>,
        warrants: &WarrantIndex,
        batch: &mut BatchOutputs,
    ) {
        let mut candidates: Vec<(u8, u64)> = Vec::new();
        for (field, number) in &record.numbers {
            let target = (MSISDN, number.key());
            if self.matched_numbers[*field as usize] && warrants.has_target(&target) {
                candidates.push(target);
            }
        }
        if let Some(imsi) = &record.imsi {
            if warrants.has_target(&(IMSI, imsi.key())) {
                candidates.push((IMSI, imsi.key()));
            }
        }
        if let Some(imei) = &record.imei {
            if warrants.has_target(&(IMEI, imei.key())) {
                candidates.push((IMEI, imei.key()));
            }
        }
        if candidates.is_empty() {
            return;
        }
        let liids = warrants.matches(&candidates, record.span());
        for route in 0..self.intercept_routes {
            for liid in &liids {
                let key_start = batch.data.len();
                batch.data.extend_from_slice(liid.as_bytes());
                let key = key_start..batch.data.len();
                let start = batch.data.len();
                let data = &mut batch.data;
                data.extend_from_slice(b"{\"liid\":");
                json::write_str(data, liid);
                data.extend_from_slice(b",\"recordId\":");
                json::write_str(data, &record.record_id);
                data.extend_from_slice(b",\"record\":");
                data.extend_from_slice(raw);
                data.push(b'}');
                batch.outputs.push(Output {
                    target: Target::Intercept {
                        route,
                        liid: (*liid).to_owned(),
                    },
                    key: Some(key),
                    value: start..batch.data.len(),
                    record_id: None,
                });
            }
        }
    }

    fn pseudonyms_text(&self, slot: usize, value: &[u8]) -> [u8; PSEUDONYM_CHARS] {
        self.pseudonymizers[slot].pseudonym_text(value)
    }

    fn pseudonym_into(
        &mut self,
        plan_index: usize,
        id_type: usize,
        value: &Digits,
        out: &mut Vec<u8>,
    ) {
        let lane = self.lanes[plan_index][id_type];
        let chars: [u8; PSEUDONYM_CHARS] =
            self.caches[id_type].pseudonym(lane, value, &self.pseudonymizers);
        out.extend_from_slice(&self.key_prefix);
        out.extend_from_slice(&chars);
    }

    /// Write the route's keyed record id (`<keyId>:` and 22 characters) and return where,
    /// as `engine._record_id`; `None` on a route that carries the source id.
    fn keyed_record_id(
        &self,
        plan_index: usize,
        record: &Record<'_>,
        data: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        let slot = self.plans[plan_index].record_id_key?;
        let chars = self.pseudonymizers[slot].uncached(record.record_id.as_bytes());
        let start = data.len();
        data.extend_from_slice(&self.key_prefix);
        data.extend_from_slice(&chars);
        Some(start..data.len())
    }

    fn key(
        &mut self,
        plan_index: usize,
        record: &Record<'_>,
        served: Option<Digits>,
        data: &mut Vec<u8>,
    ) -> Option<Range<usize>> {
        let start = data.len();
        let plan = &self.plans[plan_index];
        let (identity, id_type) = match (served, record.imsi) {
            (Some(number), _) => (number, 0),
            (None, Some(imsi)) => (imsi, 1),
            (None, None) => return None,
        };
        if plan.analytics {
            self.pseudonym_into(plan_index, id_type, &identity, data);
        } else {
            data.extend_from_slice(identity.as_bytes());
        }
        Some(start..data.len())
    }

    fn value(
        &mut self,
        plan_index: usize,
        record: &Record<'_>,
        keyed_id: Option<Range<usize>>,
        states: &[Option<ConsentState>],
        served_ok: bool,
        out: &mut Vec<u8>,
    ) {
        let record_id = self.decoder.catalog.record_id;
        out.push(b'{');
        let mut first = true;
        for (field, value) in &record.fields {
            if let Value::Null = value {
                continue;
            }
            let plan = &self.plans[plan_index];
            let info = &self.decoder.catalog.fields[*field as usize];
            // Every output carries a record id (the policy refuses a rule for it), as
            // engine.py's `_value` does: keyed per purpose on analytics routes, else as
            // received. The one place it is written into a value.
            if Some(*field) == record_id {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&info.json_key);
                match &keyed_id {
                    Some(range) => {
                        // `<keyId>:` and base64url: nothing in it needs escaping.
                        out.push(b'"');
                        out.extend_from_within(range.clone());
                        out.push(b'"');
                    }
                    None => json::write_value(out, value),
                }
                continue;
            }
            let Some(rule) = plan.rules[*field as usize] else {
                continue;
            };
            if info.owner == Owner::Number {
                if let Some(class) = record.party(*field) {
                    let action =
                        party::route_action(rule.otherwise, self.party_actions[class as usize]);
                    if action == Action::Drop {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(&info.json_key);
                    if action == Action::Pseudonymize {
                        let text = value.as_str().unwrap_or_default();
                        let slot = plan.pseudonymizers[PARTY_SLOT];
                        let chars = self.pseudonyms_text(slot, text.as_bytes());
                        out.push(b'"');
                        out.extend_from_slice(&self.key_prefix);
                        out.extend_from_slice(&chars);
                        out.push(b'"');
                    } else {
                        // Keep: as received, there is no number to normalize.
                        json::write_value(out, value);
                    }
                    continue;
                }
            }
            let kind = info.kind;
            let normalized = match kind {
                Kind::Msisdn => record.number(*field).copied(),
                Kind::Imsi => record.imsi,
                Kind::Imei => record.imei,
                _ => None,
            };
            let consented = match info.owner {
                Owner::Served => served_ok,
                Owner::Number => {
                    let state = record
                        .numbers
                        .iter()
                        .position(|(f, _)| f == field)
                        .and_then(|i| states[i]);
                    // An objector's number is dropped on a route that excludes objectors.
                    if plan.excludes_objections
                        && state.is_some_and(|s| s.objects(plan.purpose_bit))
                    {
                        continue;
                    }
                    state.is_some_and(|s| s.granted & plan.purpose_bit != 0)
                }
                Owner::Nobody => true,
            };
            let action = if consented {
                rule.consented
            } else {
                rule.otherwise
            };
            if action == Action::Drop {
                continue;
            }
            let id_type = id_type(kind);
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&info.json_key);
            match (action, normalized) {
                (Action::Pseudonymize, Some(n)) => {
                    out.push(b'"');
                    self.pseudonym_into(plan_index, id_type, &n, out);
                    out.push(b'"');
                }
                (Action::Keep, Some(n)) => json::write_str(out, n.as_str()),
                (Action::Mask(digits), Some(n)) => {
                    let keep = n.len().saturating_sub(digits as usize);
                    out.push(b'"');
                    out.extend_from_slice(&n.as_bytes()[..keep]);
                    out.extend(std::iter::repeat_n(b'X', digits as usize));
                    out.push(b'"');
                }
                (Action::Tac, Some(n)) => json::write_str(out, n.prefix(8).as_str()),
                (Action::Hour, _) => {
                    let text = value.as_str().unwrap_or_default();
                    let micros = time::parse_time(text, self.decoder.dialect).unwrap_or_default();
                    json::write_str(out, &time::to_hour(text, micros));
                }
                _ if kind == Kind::Location => self.location(value, action, out),
                _ if kind == Kind::LocationChanges => {
                    out.push(b'[');
                    if let Value::Array(changes) = value {
                        for (i, change) in changes.iter().enumerate() {
                            if i > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(b"{\"location\":");
                            self.location(
                                change.get("location").unwrap_or(&Value::Null),
                                action,
                                out,
                            );
                            out.extend_from_slice(b",\"changeTime\":");
                            let text = change
                                .get("changeTime")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            if action == Action::Keep {
                                json::write_str(out, text);
                            } else {
                                let micros = time::parse_time(text, self.decoder.dialect)
                                    .unwrap_or_default();
                                json::write_str(out, &time::to_hour(text, micros));
                            }
                            out.push(b'}');
                        }
                    }
                    out.push(b']');
                }
                _ => json::write_value(out, value),
            }
        }
        let plan = &self.plans[plan_index];
        if plan.analytics {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(b"\"purpose\":");
            out.extend_from_slice(&plan.purpose_json);
        }
        out.push(b'}');
    }

    fn location(&self, value: &Value<'_>, action: Action, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"mccMnc\":");
        json::write_value(out, value.get("mccMnc").unwrap_or(&Value::Null));
        if action != Action::MccMnc {
            if let Some(area) = value.get_present("locationAreaCode") {
                out.extend_from_slice(b",\"locationAreaCode\":");
                json::write_value(out, area);
            }
            if action == Action::Keep {
                if let Some(cell) = value.get_present("cellId") {
                    out.extend_from_slice(b",\"cellId\":");
                    json::write_value(out, cell);
                }
            }
        }
        out.push(b'}');
    }
}
