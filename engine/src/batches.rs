//! A batch's outputs laid out as the producer sends them: Kafka v2 record batches per
//! partition, keyed messages placed by murmur2 (Kafka's default partitioner), keyless
//! ones round-robin, each partition's records in output order.
//!
//! `pipeline.shell.produce.reference_record_batches` over the outputs `process_batch`
//! returns is the specification: the same partitions in the same order, the same bytes.

use crate::engine::{BatchOutputs, Target};
use crate::kafka::{self, BatchLayout, BatchSizer, Cursor, EncodedHeaders, HEADER_BYTES};

const RECORD_ID: &[u8] = b"cdrveil.record-id";
const CONSENT_VERSION: &[u8] = b"cdrveil.consent-version";
const LIID: &[u8] = b"cdrveil.liid";

/// A route's topic and its fixed headers, encoded once.
pub struct RouteHeaders {
    /// Index of the route's topic in [`Placement::topics`].
    pub topic: usize,
    /// The route's own headers (route, legal basis, policy version, key id), encoded.
    pub encoded: Vec<u8>,
    pub count: usize,
}

impl RouteHeaders {
    pub fn new(topic: usize, headers: &[(String, Vec<u8>)]) -> RouteHeaders {
        let mut encoded = Vec::new();
        for (name, value) in headers {
            kafka::encode_header(&mut encoded, name.as_bytes(), value);
        }
        RouteHeaders {
            topic,
            encoded,
            count: headers.len(),
        }
    }
}

/// Every topic the engine writes, and each route's topic and headers.
pub struct Placement {
    /// Distinct topic names, in the order the routes first name them.
    pub topics: Vec<String>,
    pub intercepts: Vec<RouteHeaders>,
    pub plans: Vec<RouteHeaders>,
}

impl Placement {
    /// Index of `topic`, adding it if new.
    pub fn topic_index(topics: &mut Vec<String>, topic: &str) -> usize {
        match topics.iter().position(|t| t == topic) {
            Some(i) => i,
            None => {
                topics.push(topic.to_owned());
                topics.len() - 1
            }
        }
    }
}

/// One partition's finished record batches.
pub struct PartitionBatches {
    pub topic: usize,
    pub partition: u32,
    pub batches: Vec<Vec<u8>>,
}

/// Where the record batches of one partition close: (bytes, records) of each.
pub struct PlannedPartition {
    pub topic: usize,
    pub partition: u32,
    pub batches: Vec<(usize, u32)>,
}

/// The record batches a batch's outputs make, sized before any is written (so they can be
/// written straight into buffers of their final size).
pub struct Plan {
    /// Topics in the order outputs first reach them, partitions ascending.
    pub partitions: Vec<PlannedPartition>,
    /// Per output, the index of its partition in `partitions`.
    placed: Vec<u32>,
    /// The keyless counter after the batch.
    pub round_robin: u64,
}

impl Plan {
    /// Every batch's size, partition by partition: the buffers [`write`] fills.
    pub fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.partitions
            .iter()
            .flat_map(|p| p.batches.iter().map(|&(bytes, _)| bytes))
    }
}

/// Call `each(route, key, value, headers)` for every output of `batch`, in order, with
/// the record's own headers (record id, consent version, LIID) encoded once per record.
fn for_each_output(
    placement: &Placement,
    batch: &BatchOutputs,
    mut each: impl FnMut(&RouteHeaders, Option<&[u8]>, &[u8], &EncodedHeaders<'_>),
) {
    let data = &batch.data;
    let mut own = Vec::with_capacity(96);
    // An analytics output's own headers: its keyed record id in place of the source id.
    let mut keyed = Vec::with_capacity(96);
    let mut version_header = Vec::with_capacity(32);
    let mut liid_header = Vec::with_capacity(48);
    let mut version = itoa_buffer();
    for record in &batch.records {
        if record.outputs.is_empty() {
            continue;
        }
        version_header.clear();
        let version_text: &[u8] = match record.consent_version {
            Some(v) => format_u64(&mut version, v),
            None => b"none",
        };
        kafka::encode_header(&mut version_header, CONSENT_VERSION, version_text);
        own.clear();
        kafka::encode_header(&mut own, RECORD_ID, &data[record.record_id.clone()]);
        own.extend_from_slice(&version_header);
        for output in &batch.outputs[record.outputs.clone()] {
            let own: &[u8] = match &output.record_id {
                Some(range) => {
                    keyed.clear();
                    kafka::encode_header(&mut keyed, RECORD_ID, &data[range.clone()]);
                    keyed.extend_from_slice(&version_header);
                    &keyed
                }
                None => &own,
            };
            let (route, liid) = match &output.target {
                Target::Intercept { route, liid } => (&placement.intercepts[*route], Some(liid)),
                Target::Plan(index) => (&placement.plans[*index], None),
            };
            let headers = match liid {
                Some(liid) => {
                    liid_header.clear();
                    kafka::encode_header(&mut liid_header, LIID, liid.as_bytes());
                    EncodedHeaders {
                        count: route.count + 3,
                        parts: [&route.encoded, own, &liid_header],
                    }
                }
                None => EncodedHeaders {
                    count: route.count + 2,
                    parts: [&route.encoded, own, b""],
                },
            };
            let key = output.key.as_ref().map(|range| &data[range.clone()]);
            each(route, key, &data[output.value.clone()], &headers);
        }
    }
}

/// Place `batch`'s outputs (`partitions[t]` partitions for topic `t`, the keyless counter
/// starting at `round_robin`) and size their record batches.
pub fn plan(
    placement: &Placement,
    batch: &BatchOutputs,
    partitions: &[u32],
    layout: &BatchLayout,
    mut round_robin: u64,
) -> Plan {
    // Per topic, per partition, the index of its planned partition (u32::MAX: none yet).
    let mut index: Vec<Vec<u32>> = partitions.iter().map(|_| Vec::new()).collect();
    let mut order: Vec<usize> = Vec::with_capacity(partitions.len());
    let mut planned: Vec<PlannedPartition> = Vec::new();
    let mut sizers: Vec<BatchSizer> = Vec::new();
    let mut placed = Vec::with_capacity(batch.outputs.len());
    for_each_output(placement, batch, |route, key, value, headers| {
        let n = partitions[route.topic];
        let partition = match key {
            Some(key) => kafka::partition_of(key, n),
            None => {
                let p = (round_robin % u64::from(n)) as u32;
                round_robin += 1;
                p
            }
        };
        let topic = &mut index[route.topic];
        if topic.is_empty() {
            topic.resize(n as usize, u32::MAX);
            order.push(route.topic);
        }
        let mut at = topic[partition as usize];
        if at == u32::MAX {
            at = planned.len() as u32;
            topic[partition as usize] = at;
            planned.push(PlannedPartition {
                topic: route.topic,
                partition,
                batches: Vec::new(),
            });
            sizers.push(BatchSizer::default());
        }
        let sizer = &mut sizers[at as usize];
        let body = kafka::record_body_len(sizer.records, key, value.len(), headers);
        let body = match sizer.fits(layout, body) {
            Some(closed) => {
                planned[at as usize].batches.push(closed);
                kafka::record_body_len(0, key, value.len(), headers)
            }
            None => body,
        };
        sizer.add(body);
        placed.push(at);
    });
    for (part, sizer) in planned.iter_mut().zip(&sizers) {
        part.batches.push((sizer.bytes, sizer.records));
    }
    // Topics in first-output order, partitions ascending.
    let mut ranked: Vec<u32> = Vec::with_capacity(planned.len());
    for &t in &order {
        ranked.extend(index[t].iter().copied().filter(|&i| i != u32::MAX));
    }
    let mut rank = vec![0u32; planned.len()];
    for (r, &i) in ranked.iter().enumerate() {
        rank[i as usize] = r as u32;
    }
    for p in &mut placed {
        *p = rank[*p as usize];
    }
    let mut slots: Vec<Option<PlannedPartition>> = planned.into_iter().map(Some).collect();
    let partitions = ranked
        .iter()
        .filter_map(|&i| slots[i as usize].take())
        .collect();
    Plan {
        partitions,
        placed,
        round_robin,
    }
}

/// Write the record batches `plan` sized into `buffers` (one per batch, in the order of
/// [`Plan::sizes`], each exactly that size), headers and CRCs included.
pub fn write(
    placement: &Placement,
    batch: &BatchOutputs,
    plan: &Plan,
    layout: &BatchLayout,
    buffers: &mut [&mut [u8]],
) {
    // Per partition: its first buffer, the batch being written, its position and records.
    let mut first = Vec::with_capacity(plan.partitions.len());
    let mut total = 0;
    for part in &plan.partitions {
        first.push(total);
        total += part.batches.len();
    }
    assert_eq!(total, buffers.len(), "one buffer per planned batch");
    let mut state: Vec<(usize, usize, u32)> = vec![(0, HEADER_BYTES, 0); plan.partitions.len()];
    let mut outputs = plan.placed.iter();
    for_each_output(placement, batch, |_, key, value, headers| {
        let Some(&at) = outputs.next() else {
            return;
        };
        let at = at as usize;
        let (current, pos, records) = &mut state[at];
        if *records == plan.partitions[at].batches[*current].1 {
            *current += 1;
            *pos = HEADER_BYTES;
            *records = 0;
        }
        let body = kafka::record_body_len(*records, key, value.len(), headers);
        let mut cursor = Cursor {
            buf: &mut *buffers[first[at] + *current],
            pos: *pos,
        };
        cursor.record(body, *records, key, value, headers);
        *pos = cursor.pos;
        *records += 1;
    });
    let mut buffer = buffers.iter_mut();
    for part in &plan.partitions {
        for &(bytes, records) in &part.batches {
            if let Some(out) = buffer.next() {
                debug_assert_eq!(out.len(), bytes);
                kafka::write_header(out, records, layout);
            }
        }
    }
}

/// The record batches of `batch`'s outputs, `partitions[t]` partitions for topic `t`, the
/// keyless counter starting at `round_robin`; and the counter after them.
pub fn record_batches(
    placement: &Placement,
    batch: &BatchOutputs,
    partitions: &[u32],
    layout: &BatchLayout,
    round_robin: u64,
) -> (Vec<PartitionBatches>, u64) {
    let plan = plan(placement, batch, partitions, layout, round_robin);
    let mut buffers: Vec<Vec<u8>> = plan.sizes().map(|size| vec![0; size]).collect();
    let mut slices: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
    write(placement, batch, &plan, layout, &mut slices);
    let mut buffers = buffers.into_iter();
    let finished = plan
        .partitions
        .iter()
        .map(|part| PartitionBatches {
            topic: part.topic,
            partition: part.partition,
            batches: buffers.by_ref().take(part.batches.len()).collect(),
        })
        .collect();
    (finished, plan.round_robin)
}

fn itoa_buffer() -> [u8; 20] {
    [0; 20]
}

/// `v` in decimal, written into the end of `buf`.
fn format_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Output, RecordOutputs};

    fn records_of(buffer: &[u8]) -> usize {
        i32::from_be_bytes([buffer[57], buffer[58], buffer[59], buffer[60]]) as usize
    }

    #[test]
    fn keyless_outputs_go_round_robin_across_topics_and_keyed_ones_by_murmur2() {
        let placement = Placement {
            topics: vec!["a".into(), "b".into()],
            intercepts: vec![],
            plans: vec![RouteHeaders::new(0, &[]), RouteHeaders::new(1, &[])],
        };
        let mut batch = BatchOutputs::default();
        batch.data.extend_from_slice(b"r1{}k");
        for (plan, key) in [(0, None), (1, None), (0, Some(4..5)), (0, None), (1, None)] {
            batch.outputs.push(Output {
                target: Target::Plan(plan),
                key,
                value: 2..4,
                record_id: None,
            });
        }
        batch.records.push(RecordOutputs {
            index: 0,
            record_id: 0..2,
            consent_version: None,
            outputs: 0..5,
        });
        let layout = BatchLayout {
            batch_bytes: 1 << 20,
            timestamp_ms: 5,
        };
        let (finished, after) = record_batches(&placement, &batch, &[3, 2], &layout, 10);
        assert_eq!(after, 14);
        // Keyless: counter 10 -> a[1], 11 -> b[1], 12 -> a[0], 13 -> b[1].
        let keyed = kafka::partition_of(b"k", 3);
        let mut want: Vec<(usize, u32, usize)> = vec![(0, 1, 1), (0, 0, 1), (1, 1, 2)];
        if let Some(slot) = want.iter_mut().find(|w| w.0 == 0 && w.1 == keyed) {
            slot.2 += 1;
        } else {
            want.push((0, keyed, 1));
        }
        want.sort();
        let mut got: Vec<(usize, u32, usize)> = finished
            .iter()
            .map(|p| (p.topic, p.partition, records_of(&p.batches[0])))
            .collect();
        got.sort();
        assert_eq!(got, want);
        // Topics in the order the outputs first reach them, partitions ascending.
        assert_eq!(finished[0].topic, 0);
        assert!(finished.windows(2).all(|w| w[0].topic < w[1].topic
            || (w[0].topic == w[1].topic && w[0].partition < w[1].partition)));
    }

    #[test]
    fn versions_are_decimal() {
        let mut buf = itoa_buffer();
        assert_eq!(format_u64(&mut buf, 0), b"0");
        assert_eq!(format_u64(&mut buf, 42), b"42");
        assert_eq!(
            format_u64(&mut buf, u64::MAX),
            u64::MAX.to_string().as_bytes()
        );
    }
}
