#!/usr/bin/env bash
# One-shot cluster set-up for the Compose stack, run in the Apache Kafka image as the `admin`
# super user (SASL PLAIN over TLS on the brokers' internal listener):
#   1. wait until all three brokers answer;
#   2. create the SCRAM-SHA-512 credentials of the cdrveil principals;
#   3. add the ACLs of every principal (deploy/README.md, "ACLs per consumer team").
# Idempotent: credentials are overwritten with the same passwords, ACLs already there stay.
# Topic names are the contract of pipeline/core/topics.py and the policy (no prefix in this stack).
set -euo pipefail

bin=/opt/kafka/bin
bootstrap="kafka-1:19094,kafka-2:19094,kafka-3:19094"
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
# The admin password goes to a private temporary file, never to the command line.
cat >"$config" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$(cat /run/secrets/kafka_admin_password)";
ssl.truststore.type=PEM
ssl.truststore.location=/run/secrets/kafka_ca
EOF

echo "waiting for the brokers"
for attempt in $(seq 1 60); do
  if "$bin/kafka-broker-api-versions.sh" --bootstrap-server "$bootstrap" \
      --command-config "$config" 2>/dev/null | grep -c "^kafka-[123]:19094" | grep -qx 3; then
    break
  fi
  if [[ "$attempt" == 60 ]]; then
    echo "the brokers did not answer within 5 minutes" >&2
    exit 1
  fi
  sleep 5
done

scram() {  # principal, password file
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$config" \
    --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(cat "$2")]" >/dev/null
  echo "SCRAM credentials of $1 set"
}
scram cdrveil-worker /run/secrets/cdrveil_worker_password
scram cdrveil-topics /run/secrets/cdrveil_topics_password

acl() {
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$config" --add "$@" \
    >/dev/null
}

# The worker: reads the inputs and the state topics, writes every output, commits in its
# group; transactional ids and idempotent writes for processing_guarantee=exactly_once.
worker=User:cdrveil-worker
acl --allow-principal "$worker" --operation Read --operation Describe \
  --topic cdr.voice --topic cdr.sms --topic consent.state --topic li.warrants
acl --allow-principal "$worker" --operation Write --operation Describe \
  --topic traffic.lawful-intercept --topic traffic.billing --topic traffic.dead-letter
acl --allow-principal "$worker" --operation Write --operation Describe \
  --resource-pattern-type prefixed --topic traffic.analytics.
acl --allow-principal "$worker" --operation Read --group cdrveil
acl --allow-principal "$worker" --operation Write --operation Describe \
  --resource-pattern-type prefixed --transactional-id cdrveil-
acl --allow-principal "$worker" --operation IdempotentWrite --cluster

# The topic job: creates topics and reads their configuration, nothing else.
topics=User:cdrveil-topics
acl --allow-principal "$topics" --operation Create --operation Describe \
  --operation DescribeConfigs --operation AlterConfigs \
  --topic cdr.voice --topic cdr.sms --topic consent.state --topic li.warrants \
  --topic traffic.lawful-intercept --topic traffic.billing --topic traffic.dead-letter
acl --allow-principal "$topics" --operation Create --operation Describe \
  --operation DescribeConfigs --operation AlterConfigs \
  --resource-pattern-type prefixed --topic traffic.analytics.

# Producers of the inputs and of the state topics.
acl --allow-principal User:mediation --operation Write --operation Describe \
  --topic cdr.voice --topic cdr.sms
acl --allow-principal User:consent-portal --operation Write --operation Describe \
  --topic consent.state
acl --allow-principal User:li-admin --operation Write --operation Describe --topic li.warrants

# Consumers: each reads its own topic only, in groups named after it.
reader() {  # principal, topic, group prefix
  acl --allow-principal "User:$1" --operation Read --operation Describe --topic "$2"
  acl --allow-principal "User:$1" --operation Read --resource-pattern-type prefixed --group "$3"
}
reader li-mediation traffic.lawful-intercept li-mediation
reader billing traffic.billing billing
reader analytics-marketing traffic.analytics.marketing analytics-marketing
reader analytics-service-improvement traffic.analytics.service_improvement analytics-service-improvement
reader analytics-fraud-prevention traffic.analytics.fraud_prevention analytics-fraud-prevention
reader analytics-network-planning traffic.analytics.network_planning analytics-network-planning
reader pipeline-operators traffic.dead-letter pipeline-operators

echo "ACLs in place:"
"$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config "$config" --list \
  | grep -c "principal=" | xargs echo "  entries:"
