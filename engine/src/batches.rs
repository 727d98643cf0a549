//! A batch's outputs laid out as the producer sends them: Kafka v2 record batches per
//! partition, keyed messages placed by murmur2 (Kafka's default partitioner), keyless
//! ones round-robin, each partition's records in output order.
//!
//! `pipeline.shell.produce.reference_record_batches` over the outputs `process_batch`
//! returns is the specification: the same partitions in the same order, the same bytes.

use crate::engine::{BatchOutputs, Target};
use crate::kafka::{self, BatchLayout, EncodedHeaders, PartitionBuilder};

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

/// The record batches of `batch`'s outputs, `partitions[t]` partitions for topic `t`, the
/// keyless counter starting at `round_robin`; and the counter after them.
pub fn record_batches(
    placement: &Placement,
    batch: &BatchOutputs,
    partitions: &[u32],
    layout: &BatchLayout,
    mut round_robin: u64,
) -> (Vec<PartitionBatches>, u64) {
    // Per topic, one builder per partition; topics in the order outputs first reach them.
    let mut builders: Vec<Vec<PartitionBuilder>> =
        partitions.iter().map(|_| Vec::new()).collect::<Vec<_>>();
    let mut order: Vec<usize> = Vec::with_capacity(partitions.len());
    let data = &batch.data;
    let mut own = Vec::with_capacity(96);
    let mut liid_header = Vec::with_capacity(48);
    let mut version = itoa_buffer();
    for record in &batch.records {
        if record.outputs.is_empty() {
            continue;
        }
        own.clear();
        kafka::encode_header(&mut own, RECORD_ID, &data[record.record_id.clone()]);
        let version_text: &[u8] = match record.consent_version {
            Some(v) => format_u64(&mut version, v),
            None => b"none",
        };
        kafka::encode_header(&mut own, CONSENT_VERSION, version_text);
        for output in &batch.outputs[record.outputs.clone()] {
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
                        parts: [&route.encoded, &own, &liid_header],
                    }
                }
                None => EncodedHeaders {
                    count: route.count + 2,
                    parts: [&route.encoded, &own, b""],
                },
            };
            let n = partitions[route.topic];
            let key = output.key.as_ref().map(|range| &data[range.clone()]);
            let partition = match key {
                Some(key) => kafka::partition_of(key, n),
                None => {
                    let p = (round_robin % u64::from(n)) as u32;
                    round_robin += 1;
                    p
                }
            };
            let topic = &mut builders[route.topic];
            if topic.is_empty() {
                topic.resize_with(n as usize, PartitionBuilder::default);
                order.push(route.topic);
            }
            topic[partition as usize].append(layout, key, &data[output.value.clone()], &headers);
        }
    }
    let mut finished = Vec::new();
    for t in order {
        for (partition, builder) in std::mem::take(&mut builders[t]).into_iter().enumerate() {
            if !builder.is_empty() {
                finished.push(PartitionBatches {
                    topic: t,
                    partition: partition as u32,
                    batches: builder.finish(layout),
                });
            }
        }
    }
    (finished, round_robin)
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
