//! The extension module `pipeline._engine`: the engine and its two tables as Python classes.

use std::sync::{Arc, RwLock};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};
use zeroize::Zeroizing;

use crate::batches::{self, Placement, RouteHeaders};
use crate::decode::{Catalog, Decoder, Kind, Owner};
use crate::engine::{Action, BatchOutputs, Engine, FieldRule, RoutePlan, Target};
use crate::kafka::BatchLayout;
use crate::normalize::Numbering;
use crate::party::{PartyClass, CLASSES, NAMES};
use crate::pseudonym::Pseudonymizer;
use crate::tables::{ConsentTable, Purposes, WarrantIndex};
use crate::time::Dialect;

fn item<'py, T>(plan: &Bound<'py, PyDict>, name: &str) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
    for<'a> <T as FromPyObject<'a, 'py>>::Error: Into<PyErr>,
{
    match plan.get_item(name)? {
        Some(value) => value.extract::<T>().map_err(Into::into),
        None => Err(PyValueError::new_err(format!(
            "the engine plan has no '{name}'"
        ))),
    }
}

struct Settings {
    numbering: Numbering,
    dialect: Dialect,
    purposes: Purposes,
}

fn settings(plan: &Bound<'_, PyDict>) -> PyResult<Settings> {
    let (lower_t, lower_z, wide_offset_minutes): (bool, bool, bool) = item(plan, "dialect")?;
    let purposes: Vec<String> = item(plan, "purposes")?;
    if purposes.len() > 64 {
        return Err(PyValueError::new_err(
            "the native engine takes at most 64 purposes",
        ));
    }
    Ok(Settings {
        numbering: Numbering {
            country_code: item(plan, "country_code")?,
            trunk_prefix: item(plan, "trunk_prefix")?,
            international_prefix: item(plan, "international_prefix")?,
        },
        dialect: Dialect {
            lower_t,
            lower_z,
            wide_offset_minutes,
        },
        purposes: Purposes { names: purposes },
    })
}

fn bytes_arg<'a>(value: &'a Option<Bound<'_, PyAny>>) -> PyResult<Option<&'a [u8]>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast::<PyBytes>() {
            Ok(b) => Ok(Some(b.as_bytes())),
            Err(_) => Err(PyTypeError::new_err(
                "keys and values must be bytes or None",
            )),
        },
    }
}

type ConsentAnswer = (u64, Vec<String>, Vec<String>, bool);

/// The consent table (`consent.state`), in native memory.
#[pyclass(module = "pipeline._engine", name = "ConsentTable", frozen)]
pub struct PyConsentTable {
    inner: Arc<RwLock<ConsentTable>>,
}

#[pymethods]
impl PyConsentTable {
    /// Apply one message; `(code, message)` if it was not accepted, else `None`.
    #[pyo3(signature = (key, value))]
    fn apply(
        &self,
        key: Option<Bound<'_, PyAny>>,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Option<(&'static str, String)>> {
        let (key, value) = (bytes_arg(&key)?, bytes_arg(&value)?);
        let mut table = self
            .inner
            .write()
            .map_err(|_| PyValueError::new_err("table poisoned"))?;
        Ok(table.apply(key, value))
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("table poisoned"))?
            .len())
    }

    /// The version, granted and objected-to purposes (of those the routes ask about) and
    /// whether the state was readable, of one subscriber.
    fn get(&self, msisdn: &str) -> PyResult<Option<ConsentAnswer>> {
        let table = self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("table poisoned"))?;
        let Some(digits) = crate::normalize::Digits::new(msisdn.as_bytes()) else {
            return Ok(None);
        };
        Ok(table.get(&digits).map(|state| {
            (
                state.version,
                table.granted_names(state.granted),
                table.granted_names(state.objected),
                state.readable,
            )
        }))
    }

    /// Messages carrying a field the schema does not define, by field name.
    fn unknown_fields(&self) -> PyResult<Vec<(String, u64)>> {
        let table = self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("table poisoned"))?;
        Ok(table.unknown.names.clone())
    }

    fn __repr__(&self) -> String {
        "ConsentTable(native)".to_owned()
    }
}

/// The warrant index (`li.warrants`), in native memory.
#[pyclass(module = "pipeline._engine", name = "WarrantIndex", frozen)]
pub struct PyWarrantIndex {
    inner: Arc<RwLock<WarrantIndex>>,
}

#[pymethods]
impl PyWarrantIndex {
    /// Apply one message; `(code, message)` if it was not accepted, else `None`.
    #[pyo3(signature = (key, value))]
    fn apply(
        &self,
        key: Option<Bound<'_, PyAny>>,
        value: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Option<(&'static str, String)>> {
        let (key, value) = (bytes_arg(&key)?, bytes_arg(&value)?);
        let mut index = self
            .inner
            .write()
            .map_err(|_| PyValueError::new_err("index poisoned"))?;
        Ok(index.apply(key, value))
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("index poisoned"))?
            .len())
    }

    /// Whether any warrant is registered.
    #[getter]
    fn active(&self) -> PyResult<bool> {
        Ok(self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("index poisoned"))?
            .active())
    }

    /// Messages carrying a top-level field the schema does not define, by field name.
    fn unknown_fields(&self) -> PyResult<Vec<(String, u64)>> {
        let index = self
            .inner
            .read()
            .map_err(|_| PyValueError::new_err("index poisoned"))?;
        Ok(index.unknown.names.clone())
    }

    fn __repr__(&self) -> String {
        "WarrantIndex(native)".to_owned()
    }
}

struct RouteObjects {
    topic: Py<PyString>,
    headers: Vec<Py<PyTuple>>,
}

/// The record engine. Built from a plan and the derived keys (see `pipeline/core/native.py`).
#[pyclass(module = "pipeline._engine", name = "Engine")]
pub struct PyEngine {
    engine: Engine,
    consent: Arc<RwLock<ConsentTable>>,
    warrants: Arc<RwLock<WarrantIndex>>,
    consent_table: Py<PyConsentTable>,
    warrant_index: Py<PyWarrantIndex>,
    intercepts: Vec<RouteObjects>,
    routes: Vec<RouteObjects>,
    /// Each route's topic and encoded headers, for the record batches.
    placement: Placement,
    /// `placement.topics` as Python strings.
    topic_names: Vec<Py<PyString>>,
    output_type: Py<PyType>,
    record_id_name: Py<PyString>,
    version_name: Py<PyString>,
    liid_name: Py<PyString>,
    no_version: Py<PyBytes>,
}

fn route_objects(py: Python<'_>, topic: String, headers: Headers) -> PyResult<RouteObjects> {
    let mut tuples = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let tuple = PyTuple::new(
            py,
            [
                PyString::intern(py, &name).into_any(),
                PyBytes::new(py, &value).into_any(),
            ],
        )?;
        tuples.push(tuple.unbind());
    }
    Ok(RouteObjects {
        topic: PyString::intern(py, &topic).unbind(),
        headers: tuples,
    })
}

fn owner(name: &str) -> PyResult<Owner> {
    match name {
        "served" => Ok(Owner::Served),
        "number" => Ok(Owner::Number),
        "none" => Ok(Owner::Nobody),
        _ => Err(PyValueError::new_err(format!(
            "unknown field owner '{name}'"
        ))),
    }
}

type FieldSpec = (String, String, String, u8);
type Headers = Vec<(String, Vec<u8>)>;

#[pymethods]
impl PyEngine {
    #[new]
    fn new(
        py: Python<'_>,
        plan: &Bound<'_, PyDict>,
        keys: &Bound<'_, PyList>,
        output_type: Bound<'_, PyType>,
    ) -> PyResult<Self> {
        let settings = settings(plan)?;
        let raw_catalog: Vec<(String, String, String)> = item(plan, "catalog")?;
        let mut fields = Vec::with_capacity(raw_catalog.len());
        for (name, kind, who) in raw_catalog {
            let kind = Kind::from_name(&kind)
                .ok_or_else(|| PyValueError::new_err(format!("unknown field kind '{kind}'")))?;
            fields.push((name, kind, owner(&who)?));
        }
        let catalog = Catalog::new(
            fields,
            item(plan, "voice_types")?,
            item(plan, "sms_types")?,
            item(plan, "mo_types")?,
        )
        .map_err(PyValueError::new_err)?;
        let matched: Vec<String> = item(plan, "matched_numbers")?;
        let matched_numbers = catalog
            .fields
            .iter()
            .map(|f| matched.contains(&f.name))
            .collect();
        let max_bytes: usize = item(plan, "max_bytes")?;
        let mut pseudonymizers = Vec::with_capacity(keys.len());
        for key in keys.iter() {
            let key = key
                .cast::<PyBytes>()
                .map_err(|_| PyTypeError::new_err("derived keys must be bytes"))?;
            let secret = Zeroizing::new(key.as_bytes().to_vec());
            pseudonymizers.push(Pseudonymizer::new(&secret));
        }
        let key_id: String = item(plan, "key_id")?;
        let mut key_prefix = key_id.into_bytes();
        key_prefix.push(b':');

        let mut intercepts = Vec::new();
        let mut placement = Placement {
            topics: Vec::new(),
            intercepts: Vec::new(),
            plans: Vec::new(),
        };
        let raw_intercepts: Vec<(String, Headers)> = item(plan, "intercepts")?;
        for (topic, headers) in raw_intercepts {
            let index = Placement::topic_index(&mut placement.topics, &topic);
            placement
                .intercepts
                .push(RouteHeaders::new(index, &headers));
            intercepts.push(route_objects(py, topic, headers)?);
        }
        let mut plans = Vec::new();
        let mut routes = Vec::new();
        let raw_routes: Vec<Bound<'_, PyDict>> = item(plan, "routes")?;
        for route in raw_routes {
            let purpose: String = item(&route, "purpose")?;
            let purpose_bit = settings.purposes.bit(&purpose).ok_or_else(|| {
                PyValueError::new_err("a route's purpose is missing from the plan's purposes")
            })?;
            let mut rules = vec![None; catalog.fields.len()];
            let specs: Vec<FieldSpec> = item(&route, "fields")?;
            for (name, consented, otherwise, digits) in specs {
                let id = catalog
                    .id(&name)
                    .ok_or_else(|| PyValueError::new_err(format!("unknown field '{name}'")))?;
                let action = |text: &str| {
                    Action::from_name(text, digits)
                        .ok_or_else(|| PyValueError::new_err(format!("unknown action '{text}'")))
                };
                rules[id as usize] = Some(FieldRule {
                    consented: action(&consented)?,
                    otherwise: action(&otherwise)?,
                });
            }
            let slots: (usize, usize, usize, usize) = item(&route, "keys")?;
            if [slots.0, slots.1, slots.2, slots.3]
                .iter()
                .any(|&s| s >= pseudonymizers.len())
            {
                return Err(PyValueError::new_err(
                    "a route names a key the plan does not hold",
                ));
            }
            let record_id_key: Option<usize> = item(&route, "record_id_key")?;
            if record_id_key.is_some_and(|s| s >= pseudonymizers.len()) {
                return Err(PyValueError::new_err(
                    "a route names a key the plan does not hold",
                ));
            }
            let mut purpose_json = Vec::new();
            crate::json::write_str(&mut purpose_json, &purpose);
            plans.push(RoutePlan {
                analytics: item(&route, "analytics")?,
                billable_only: item(&route, "billable_only")?,
                requires_consent: item(&route, "requires_consent")?,
                excludes_objections: item(&route, "excludes_objections")?,
                withheld: [0; 3],
                purpose_json,
                purpose_bit,
                rules,
                pseudonymizers: [slots.0, slots.1, slots.2, slots.3],
                record_id_key,
            });
            let topic: String = item(&route, "topic")?;
            let headers: Headers = item(&route, "headers")?;
            let index = Placement::topic_index(&mut placement.topics, &topic);
            placement.plans.push(RouteHeaders::new(index, &headers));
            routes.push(route_objects(py, topic, headers)?);
        }
        let mut party_actions = [Action::Drop; CLASSES];
        let raw_party: Vec<(String, String)> = item(plan, "party_numbers")?;
        for (class, action) in raw_party {
            let class = PartyClass::from_name(&class)
                .ok_or_else(|| PyValueError::new_err(format!("unknown party class '{class}'")))?;
            party_actions[class as usize] = match action.as_str() {
                "keep" => Action::Keep,
                "drop" => Action::Drop,
                "pseudonymize" => Action::Pseudonymize,
                _ => {
                    return Err(PyValueError::new_err(format!(
                        "a party class cannot be '{action}'"
                    )))
                }
            };
        }
        let decoder = Decoder {
            catalog,
            numbering: settings.numbering.clone(),
            dialect: settings.dialect,
            max_bytes,
        };
        // The cached identifier types (msisdn, imsi, imei); party values are not cached.
        let slots: Vec<[usize; 3]> = plans
            .iter()
            .map(|p| {
                [
                    p.pseudonymizers[0],
                    p.pseudonymizers[1],
                    p.pseudonymizers[2],
                ]
            })
            .collect();
        let (caches, lanes) = crate::pseudocache::caches_for(&slots);
        let engine = Engine {
            spare: Vec::new(),
            caches,
            lanes,
            decoder,
            key_prefix,
            home_networks: item(plan, "home_networks")?,
            intercept_routes: intercepts.len(),
            plans,
            pseudonymizers,
            matched_numbers,
            party_actions,
            party_counts: [0; CLASSES],
        };
        let consent = Arc::new(RwLock::new(ConsentTable::new(
            settings.numbering.clone(),
            settings.dialect,
            settings.purposes.clone(),
        )));
        let warrants = Arc::new(RwLock::new(WarrantIndex::new(
            settings.numbering,
            settings.dialect,
        )));
        Ok(PyEngine {
            engine,
            consent_table: Py::new(
                py,
                PyConsentTable {
                    inner: consent.clone(),
                },
            )?,
            warrant_index: Py::new(
                py,
                PyWarrantIndex {
                    inner: warrants.clone(),
                },
            )?,
            consent,
            warrants,
            intercepts,
            routes,
            topic_names: placement
                .topics
                .iter()
                .map(|t| PyString::intern(py, t).unbind())
                .collect(),
            placement,
            output_type: output_type.unbind(),
            record_id_name: PyString::intern(py, "cdrveil.record-id").unbind(),
            version_name: PyString::intern(py, "cdrveil.consent-version").unbind(),
            liid_name: PyString::intern(py, "cdrveil.liid").unbind(),
            no_version: PyBytes::new(py, b"none").unbind(),
        })
    }

    /// The consent table this engine reads.
    #[getter]
    fn consent(&self, py: Python<'_>) -> Py<PyConsentTable> {
        self.consent_table.clone_ref(py)
    }

    /// The warrant index this engine reads.
    #[getter]
    fn warrants(&self, py: Python<'_>) -> Py<PyWarrantIndex> {
        self.warrant_index.clone_ref(py)
    }

    /// Process a batch of message values (`bytes` or `None`) with the GIL released.
    ///
    /// Returns `(outputs, rejections)`: outputs as instances of the output type, in input
    /// order; rejections as `(index, code, message, field)`.
    fn process_batch<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let held = held_values(values)?;
        let slices: Vec<Option<&[u8]>> = held
            .iter()
            .map(|v| v.as_ref().map(|b| b.as_bytes()))
            .collect();
        let engine = &mut self.engine;
        let (consent, warrants) = (&self.consent, &self.warrants);
        let batch = py.detach(|| -> Result<BatchOutputs, &'static str> {
            let consent = consent.read().map_err(|_| "consent table poisoned")?;
            let warrants = warrants.read().map_err(|_| "warrant index poisoned")?;
            Ok(engine.process_batch(&slices, &consent, &warrants))
        });
        let batch = batch.map_err(PyValueError::new_err)?;
        let result = self.to_python(py, &batch);
        self.engine.recycle(batch);
        result
    }

    /// Every topic the engine can write, each once.
    #[getter]
    fn output_topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.topic_names.iter().map(|t| t.bind(py)))
    }

    /// Process a batch as `process_batch` does, and lay its outputs out in finished Kafka
    /// record batches (v2, CRC-32C, uncompressed), the GIL released throughout.
    ///
    /// `partitions` maps every output topic to its partition count; a record batch takes
    /// records until the next would reach `batch_bytes`; every record has the CreateTime
    /// `timestamp_ms`; keyless messages go round-robin from `round_robin`. Returns
    /// `(partitions, rejections, round_robin)`: `(topic, partition, [batch bytes])` per
    /// partition written, rejections as `process_batch` gives them, the counter after.
    fn process_batch_records<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyAny>,
        partitions: &Bound<'py, PyDict>,
        batch_bytes: usize,
        timestamp_ms: i64,
        round_robin: u64,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>, u64)> {
        let mut counts = Vec::with_capacity(self.topic_names.len());
        for topic in &self.topic_names {
            let n: u32 = match partitions.get_item(topic.bind(py))? {
                Some(n) => n.extract()?,
                None => {
                    return Err(PyValueError::new_err(format!(
                        "no partition count for the output topic {}",
                        topic.bind(py)
                    )))
                }
            };
            if n == 0 {
                return Err(PyValueError::new_err(format!(
                    "the output topic {} has no partitions",
                    topic.bind(py)
                )));
            }
            counts.push(n);
        }
        let held = held_values(values)?;
        let slices: Vec<Option<&[u8]>> = held
            .iter()
            .map(|v| v.as_ref().map(|b| b.as_bytes()))
            .collect();
        let layout = BatchLayout {
            batch_bytes,
            timestamp_ms,
        };
        let engine = &mut self.engine;
        let placement = &self.placement;
        let (consent, warrants) = (&self.consent, &self.warrants);
        // Decide and size the record batches without the GIL, allocate them as Python
        // bytes with it, fill them without it: every output is copied once, into place.
        let planned = py.detach(|| -> Result<_, &'static str> {
            let consent = consent.read().map_err(|_| "consent table poisoned")?;
            let warrants = warrants.read().map_err(|_| "warrant index poisoned")?;
            let batch = engine.process_batch(&slices, &consent, &warrants);
            drop((consent, warrants));
            let plan = batches::plan(placement, &batch, &counts, &layout, round_robin);
            Ok((batch, plan))
        });
        let (batch, plan) = planned.map_err(PyValueError::new_err)?;
        let mut buffers = Vec::new();
        for size in plan.sizes() {
            buffers.push(uninit_bytes(py, size)?);
        }
        let mut targets: Vec<Destination> = buffers
            .iter()
            .map(|b| {
                // SAFETY: a bytes object of this size, just made: nothing else refers to it.
                Destination(
                    unsafe { ffi::PyBytes_AsString(b.as_ptr()) }.cast(),
                    b.len().unwrap_or(0),
                )
            })
            .collect();
        py.detach(|| {
            let mut slices: Vec<&mut [u8]> = targets
                .iter_mut()
                // SAFETY: each target is a distinct, live bytes object's buffer of that
                // length (held in `buffers`), which no Python code sees until written.
                .map(|t| unsafe { std::slice::from_raw_parts_mut(t.0, t.1) })
                .collect();
            batches::write(placement, &batch, &plan, &layout, &mut slices);
        });
        let mut buffers = buffers.into_iter();
        let mut parts = Vec::with_capacity(plan.partitions.len());
        for part in &plan.partitions {
            let list = PyList::new(py, buffers.by_ref().take(part.batches.len()))?;
            parts.push((self.topic_names[part.topic].bind(py), part.partition, list));
        }
        let rejected = rejections(py, &batch.rejections)?;
        self.engine.recycle(batch);
        Ok((PyList::new(py, parts)?, rejected, plan.round_robin))
    }

    /// Records each route (by plan index) published nothing of, per reason: not billable,
    /// no consent, an objection; counted since the engine was built.
    fn withheld(&self) -> Vec<[u64; 3]> {
        self.engine.plans.iter().map(|plan| plan.withheld).collect()
    }

    /// The native work of `process_batch` alone, without building the Python outputs:
    /// `(outputs, rejections, output bytes)`. For the benchmark's cost breakdown.
    fn measure_batch(
        &mut self,
        py: Python<'_>,
        values: &Bound<'_, PyList>,
    ) -> PyResult<(usize, usize, usize)> {
        let held: Vec<Bound<'_, PyBytes>> = values
            .iter()
            .map(|v| v.cast_into::<PyBytes>())
            .collect::<Result<_, _>>()
            .map_err(|_| PyTypeError::new_err("message values must be bytes"))?;
        let slices: Vec<Option<&[u8]>> = held.iter().map(|b| Some(b.as_bytes())).collect();
        let engine = &mut self.engine;
        let (consent, warrants) = (&self.consent, &self.warrants);
        let batch = py.detach(|| -> Result<BatchOutputs, &'static str> {
            let consent = consent.read().map_err(|_| "consent table poisoned")?;
            let warrants = warrants.read().map_err(|_| "warrant index poisoned")?;
            Ok(engine.process_batch(&slices, &consent, &warrants))
        });
        let batch = batch.map_err(PyValueError::new_err)?;
        Ok((
            batch.outputs.len(),
            batch.rejections.len(),
            batch.data.len(),
        ))
    }

    /// Party-number values decoded since the last call, `(class, count)` for each class
    /// seen, and start again from zero: one call per batch feeds the metric.
    fn take_party_numbers(&mut self) -> Vec<(&'static str, u64)> {
        let counts = self.engine.take_party_counts();
        NAMES
            .iter()
            .zip(counts)
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| (*name, count))
            .collect()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.engine)
    }
}

fn untrack(tuple: &Bound<'_, PyTuple>) {
    // SAFETY: the tuple is a live, tracked object whose items are a str and a bytes.
    unsafe { ffi::PyObject_GC_UnTrack(tuple.as_ptr().cast()) }
}

impl PyEngine {
    fn output<'py>(
        &self,
        py: Python<'py>,
        items: [Bound<'py, PyAny>; 4],
    ) -> PyResult<Bound<'py, PyAny>> {
        let tp = self.output_type.bind(py).as_type_ptr();
        // SAFETY: what CPython's tuple_subtype_new does: allocate an instance of the tuple
        // subclass (Output, a NamedTuple without __dict__) with room for 4 items and fill
        // every slot with a new reference before the object is used.
        unsafe {
            let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(tp, 4);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, value) in items.into_iter().enumerate() {
                ffi::PyTuple_SET_ITEM(obj, i as ffi::Py_ssize_t, value.into_ptr());
            }
            Ok(Bound::from_owned_ptr(py, obj))
        }
    }

    fn to_python<'py>(
        &self,
        py: Python<'py>,
        batch: &BatchOutputs,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let mut outputs: Vec<Bound<'py, PyAny>> = Vec::with_capacity(batch.outputs.len());
        let data = &batch.data;
        for record in &batch.records {
            if record.outputs.is_empty() {
                continue;
            }
            let record_id = PyTuple::new(
                py,
                [
                    self.record_id_name.bind(py).clone().into_any(),
                    PyBytes::new(py, &data[record.record_id.clone()]).into_any(),
                ],
            )?;
            let version_bytes = match record.consent_version {
                Some(version) => PyBytes::new(py, version.to_string().as_bytes()),
                None => self.no_version.bind(py).clone(),
            };
            let version = PyTuple::new(
                py,
                [
                    self.version_name.bind(py).clone().into_any(),
                    version_bytes.into_any(),
                ],
            )?;
            // Tuples of a str and a bytes can hold no reference cycle: keep them out of the
            // collector's way, as CPython itself does for such tuples at the next collection.
            untrack(&record_id);
            untrack(&version);
            for output in &batch.outputs[record.outputs.clone()] {
                let (objects, liid) = match &output.target {
                    Target::Intercept { route, liid } => (&self.intercepts[*route], Some(liid)),
                    Target::Plan(index) => (&self.routes[*index], None),
                };
                let mut headers: Vec<Bound<'py, PyTuple>> =
                    Vec::with_capacity(objects.headers.len() + 3);
                headers.extend(objects.headers.iter().map(|h| h.bind(py).clone()));
                match &output.record_id {
                    Some(range) => {
                        let keyed = PyTuple::new(
                            py,
                            [
                                self.record_id_name.bind(py).clone().into_any(),
                                PyBytes::new(py, &data[range.clone()]).into_any(),
                            ],
                        )?;
                        untrack(&keyed);
                        headers.push(keyed);
                    }
                    None => headers.push(record_id.clone()),
                }
                headers.push(version.clone());
                if let Some(liid) = liid {
                    headers.push(PyTuple::new(
                        py,
                        [
                            self.liid_name.bind(py).clone().into_any(),
                            PyBytes::new(py, liid.as_bytes()).into_any(),
                        ],
                    )?);
                }
                let key = match &output.key {
                    Some(range) => PyBytes::new(py, &data[range.clone()]).into_any(),
                    None => py.None().into_bound(py),
                };
                let value = PyBytes::new(py, &data[output.value.clone()]).into_any();
                let topic = objects.topic.bind(py).clone().into_any();
                let headers = PyList::new(py, headers)?.into_any();
                outputs.push(self.output(py, [topic, key, value, headers])?);
            }
        }
        Ok((
            PyList::new(py, outputs)?,
            rejections(py, &batch.rejections)?,
        ))
    }
}

/// Where one record batch is written: a bytes object's buffer and its length.
struct Destination(*mut u8, usize);

// SAFETY: the buffer belongs to a bytes object no other thread refers to while written.
unsafe impl Send for Destination {}

/// A bytes object of `size` bytes, not yet written (filled before anyone sees it).
fn uninit_bytes(py: Python<'_>, size: usize) -> PyResult<Bound<'_, PyBytes>> {
    let size = ffi::Py_ssize_t::try_from(size)
        .map_err(|_| PyValueError::new_err("record batch too large"))?;
    // SAFETY: a NULL source asks CPython for an uninitialized bytes object of that size.
    unsafe {
        let obj = ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        Ok(Bound::from_owned_ptr(py, obj).cast_into_unchecked::<PyBytes>())
    }
}

/// The message values of a batch (`bytes` or `None`), held while native code reads them.
fn held_values<'py>(values: &Bound<'py, PyAny>) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
    let mut held = Vec::new();
    for value in values.try_iter()? {
        let value = value?;
        if value.is_none() {
            held.push(None);
        } else {
            let bytes = value
                .cast_into::<PyBytes>()
                .map_err(|_| PyTypeError::new_err("message values must be bytes or None"))?;
            held.push(Some(bytes));
        }
    }
    Ok(held)
}

/// Rejections as `(index, code, message, field)`.
fn rejections<'py>(
    py: Python<'py>,
    rejected: &[(usize, crate::decode::Rejection)],
) -> PyResult<Bound<'py, PyList>> {
    let mut entries = Vec::with_capacity(rejected.len());
    for (index, rejection) in rejected {
        let entry = (
            *index,
            rejection.code,
            rejection.message.as_str(),
            rejection.field.as_deref(),
        );
        entries.push(entry.into_pyobject(py)?);
    }
    PyList::new(py, entries)
}

/// Kafka's murmur2 of `data` (unsigned), as the record batches place keyed messages.
#[pyfunction]
fn murmur2(data: &[u8]) -> u32 {
    crate::kafka::murmur2(data)
}

/// The CRC-32C of `data`, as the record batches carry it.
#[pyfunction]
fn crc32c(data: &[u8]) -> u32 {
    crate::kafka::crc32c(data)
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(murmur2, m)?)?;
    m.add_function(wrap_pyfunction!(crc32c, m)?)?;
    m.add_class::<PyEngine>()?;
    m.add_class::<PyConsentTable>()?;
    m.add_class::<PyWarrantIndex>()?;
    Ok(())
}
