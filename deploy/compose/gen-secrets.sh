#!/usr/bin/env bash
# Generate everything the Compose stack needs and must never be committed: a private CA, a
# TLS keystore per broker, the broker truststore, the SASL passwords, the brokers' JAAS files
# and the Grafana admin password. Writes into deploy/compose/secrets/ (ignored by git).
#
# Needs openssl and keytool (any JRE; or run keytool from the Kafka image, see README.md).
# The pseudonymization keyring is made separately with `cdrveil keys init` (README.md).
#
# Passwords are hex: the Kafka image turns KAFKA_* variables into properties and drops any
# value holding '=', and a JAAS file breaks on quotes.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/secrets}"
days="${CERT_DAYS:-397}"
brokers=(kafka-1 kafka-2 kafka-3)

if [[ -e "$out/ca.crt" ]]; then
  echo "$out already holds a CA; remove the directory to start again" >&2
  exit 1
fi
umask 077
mkdir -p "$out"
cd "$out"

password() { openssl rand -hex 24; }

# -- the CA (its key stays here, off every container) ----------------------------------------
openssl req -x509 -newkey rsa:4096 -sha256 -days "$days" -nodes \
  -keyout ca.key -out ca.crt -subj "/CN=cdrveil-compose-ca" 2>/dev/null
chmod 0644 ca.crt  # public: clients mount it to verify the brokers

# -- SASL passwords ------------------------------------------------------------------------------
# broker: inter-broker and controller (PLAIN, TLS only); admin: the kafka-init job (PLAIN);
# the cdrveil principals authenticate with SCRAM-SHA-512, created by kafka-init.
for name in broker admin cdrveil-worker cdrveil-topics grafana-admin; do
  password >"$name.password"
done
broker_pw="$(cat broker.password)"
admin_pw="$(cat admin.password)"
store_pw="$(password)"

# -- one directory per broker, mounted at /etc/kafka/secrets -----------------------------------
for host in "${brokers[@]}"; do
  mkdir -p "$host"
  openssl req -newkey rsa:3072 -nodes -keyout "$host/$host.key" -out "$host/$host.csr" \
    -subj "/CN=$host" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$host" >"$host/ext.cnf"
  openssl x509 -req -in "$host/$host.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days "$days" -sha256 -extfile "$host/ext.cnf" -out "$host/$host.crt" 2>/dev/null
  openssl pkcs12 -export -name "$host" -in "$host/$host.crt" -inkey "$host/$host.key" \
    -certfile ca.crt -out "$host/kafka.keystore.p12" -passout "pass:$store_pw"
  keytool -importcert -noprompt -alias cdrveil-ca -file ca.crt \
    -keystore "$host/kafka.truststore.p12" -storetype PKCS12 -storepass "$store_pw" >/dev/null 2>&1
  for creds in keystore_creds key_creds truststore_creds; do
    printf '%s' "$store_pw" >"$host/$creds"
  done
  # One JAAS section per listener: PLAIN with static users where brokers and the admin job
  # authenticate; SCRAM (credentials kept in the cluster metadata) where clients do.
  cat >"$host/broker_jaas.conf" <<EOF
controller.KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="broker" password="$broker_pw"
  user_broker="$broker_pw";
};
broker.KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="broker" password="$broker_pw"
  user_broker="$broker_pw"
  user_admin="$admin_pw";
};
sasl_ssl.KafkaServer {
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
EOF
  rm -f "$host/$host.csr" "$host/$host.key" "$host/ext.cnf"
done
rm -f ca.srl

echo "wrote $out"
echo "next, as root (README.md says why): give each container's user its files"
echo "  chown -R 1000:1000 $out/kafka-* $out/admin.password       # Kafka image: uid 1000"
echo "  chown 10001:1000 $out/cdrveil-*.password && chmod 0440 $out/cdrveil-*.password"
echo "  chown 472 $out/grafana-admin.password                     # Grafana image: uid 472"
echo "then the keyring (the worker's uid 10001 must own it, mode 0400):"
echo "  cdrveil keys init --keyring $out/keyring.json && chown 10001:10001 $out/keyring.json"
