/*
 * Helper for the C<->JS differential tests (tests/interop/dht_*.js). Reads lines
 * "<codec> <hex>" on stdin; for each prints "OK <re-encoded hex> <fields>" or "ERR <code>".
 * The JS side checks the re-encoding is byte-identical and the fields match its decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "hyper_crypto.h"
#include "hyper_messages.h"
#include "messages.h"
#include "nat.h"
#include "routing_table.h"

static uint8_t in[HSP_DHT_MAX_DATAGRAM + 16], out[HSP_DHT_MAX_DATAGRAM + 16];
static char line[2 * sizeof(in) + 64];

static void put_hex(const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
}
static void put_opt32(const char *name, const uint8_t *b) {
  printf(" %s=", name);
  if (b) put_hex(b, 32);
  else printf("-");
}
static void put_addr(const hsp_ipv4_addr_t *a) {
  printf("%u.%u.%u.%u:%u", a->host[0], a->host[1], a->host[2], a->host[3], a->port);
}
static void put_value(bool has, hsp_bytes_t v) {
  printf(" value=");
  if (!has) printf("-");
  else if (v.len == 0) printf("empty");
  else put_hex(v.data, v.len);
}

static void rpc(size_t n) {
  if (hsp_dht_message_type(in, n) == HSP_DHT_TYPE_REQUEST) {
    hsp_dht_request_t m;
    int err = hsp_dht_request_decode(&m, in, n);
    if (err) { printf("ERR %d\n", err); return; }
    long len = hsp_dht_request_encode(out, sizeof(out), &m);
    if (len < 0) { printf("ERR %ld\n", len); return; }
    printf("OK ");
    put_hex(out, (size_t)len);
    printf(" req tid=%u to=", m.tid);
    put_addr(&m.to);
    put_opt32("id", m.id);
    put_opt32("token", m.token);
    printf(" internal=%d cmd=%llu", m.internal, (unsigned long long)m.command);
    put_opt32("target", m.target);
    put_value(m.has_value, m.value);
  } else {
    hsp_dht_response_t m;
    int err = hsp_dht_response_decode(&m, in, n);
    if (err) { printf("ERR %d\n", err); return; }
    long len = hsp_dht_response_encode(out, sizeof(out), &m);
    if (len < 0) { printf("ERR %ld\n", len); return; }
    printf("OK ");
    put_hex(out, (size_t)len);
    printf(" res tid=%u to=", m.tid);
    put_addr(&m.to);
    put_opt32("id", m.id);
    put_opt32("token", m.token);
    printf(" closer=");
    if (!m.closer_count) printf("-");
    for (size_t i = 0; i < m.closer_count; i++) {
      hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(m.closer + 6 * i);
      if (i) printf(",");
      put_addr(&a);
    }
    printf(" error=%llu", (unsigned long long)m.error);
    put_value(m.has_value, m.value);
  }
  printf("\n");
}

int main(void) {
  while (fgets(line, sizeof(line), stdin)) {
    char *sp = strchr(line, ' ');
    if (!sp) { printf("ERR usage\n"); continue; }
    *sp = 0;
    char *hex = sp + 1;
    hex[strcspn(hex, "\r\n")] = 0;
    size_t n = strlen(hex) / 2;
    if (n > sizeof(in) || hsp_hex_decode(in, n, hex) != 0) { printf("ERR hex\n"); continue; }
    if (strcmp(line, "rpc") == 0) {
      rpc(n);
    } else if (strcmp(line, "annsig") == 0 || strcmp(line, "unannsig") == 0) {
      /* target(32) nodeId(32) token(32) seed(32) encoded peer record: print the signature. */
      hsp_dht_peer_t peer;
      hsp_crypto_keypair_t kp;
      uint8_t sig[64];
      if (n < 128 || hsp_dht_peer_decode(&peer, in + 128, n - 128) != 0) {
        printf("ERR %d\n", HSP_DHT_EMALFORMED);
        continue;
      }
      hsp_crypto_keypair_from_seed(&kp, in + 96);
      uint8_t ns = line[0] == 'a' ? HSP_HYPER_ANNOUNCE : HSP_HYPER_UNANNOUNCE;
      hsp_dht_announce_sign(sig, ns, in, in + 32, in + 64, &peer, NULL, &kp);
      printf("OK ");
      put_hex(sig, 64);
      printf(" %d\n", hsp_dht_announce_verify(sig, ns, in, in + 32, in + 64, &peer, NULL));
    } else if (strcmp(line, "mutsig") == 0) {
      /* seed(32) then mutableSignable{seq, value}: print the signature. */
      hsp_crypto_keypair_t kp;
      uint8_t sig[64];
      hsp_cenc_t st = hsp_cenc_for_decode(in, n);
      st.start = 32;
      uint64_t seq = hsp_cenc_decode_uint(&st);
      hsp_bytes_t v = hsp_cenc_decode_buffer(&st);
      if (n < 32 || !hsp_cenc_ok(&st)) {
        printf("ERR %d\n", HSP_DHT_EMALFORMED);
        continue;
      }
      hsp_crypto_keypair_from_seed(&kp, in);
      hsp_dht_mutable_sign(sig, seq, v, &kp);
      printf("OK ");
      put_hex(sig, 64);
      printf(" %d\n", hsp_dht_mutable_verify(sig, seq, v, kp.public_key));
    } else if (strcmp(line, "table") == 0) {
      /* table id(32), then ids to add (32 each, k = 20); the last 32 bytes are a target.
       * Prints 1/0 per add (0 = row full or own id), then each row's size. */
      hsp_dht_table_t t;
      if (n < 64) {
        printf("ERR %d\n", HSP_DHT_EINVAL);
        continue;
      }
      hsp_dht_table_init(&t, in, 20);
      printf("OK ");
      for (size_t i = 32; i + 32 <= n; i += 32) {
        hsp_dht_table_node_t node = {0};
        memcpy(node.id, in + i, 32);
        printf("%d", hsp_dht_table_add(&t, &node) > 0);
      }
      printf(" %zu", t.size);
      for (size_t r = 0; r < HSP_DHT_ROWS; r++)
        if (t.rows[r].count) printf(" %zu:%zu", r, t.rows[r].count);
      printf("\n");
      hsp_dht_table_free(&t);
    } else if (strcmp(line, "natclass") == 0) {
      /* byte 0: DHT firewalled; then (to 6, from 6) samples: firewall and addresses after each. */
      hsp_dht_nat_classifier_t c;
      hsp_dht_nat_classifier_init(&c, n > 0 && in[0]);
      printf("OK");
      for (size_t i = 1; i + 12 <= n; i += 12) {
        hsp_ipv4_addr_t to = hsp_dht_addr_from_wire(in + i), from = hsp_dht_addr_from_wire(in + i + 6);
        hsp_dht_nat_classifier_add(&c, &to, &from);
        printf(" %d:", c.firewall);
        if (!c.has_addresses) printf("-");
        for (size_t j = 0; j < c.naddresses; j++) {
          const hsp_ipv4_addr_t *a = &c.addresses[j];
          printf("%s%u.%u.%u.%u:%u", j ? "," : "", a->host[0], a->host[1], a->host[2], a->host[3], a->port);
        }
      }
      printf("\n");
    } else if (strcmp(line, "hpsecret") == 0 && n == 64 + 32 + 4) {
      /* handshake hash(64) local secret(32) host(4): holepunch secret and address token. */
      uint8_t secret[32], token[32];
      hsp_noise_holepunch_secret(secret, in);
      hsp_dht_holepunch_token(token, in + 64, in + 96);
      printf("OK ");
      put_hex(secret, 32);
      printf(" ");
      put_hex(token, 32);
      printf("\n");
    } else if (strcmp(line, "hpopen") == 0) {
      /* secret(32) sealed payload: print the re-encoded plaintext. */
      hsp_dht_holepunch_payload_t p;
      int err = n < 32 ? HSP_DHT_EMALFORMED
                       : hsp_dht_holepunch_payload_open(&p, out, sizeof(out), in + 32, n - 32, in);
      long len = err ? err : hsp_dht_holepunch_payload_encode(out + 32768, 32768, &p);
      if (len < 0) printf("ERR %ld\n", len);
      else { printf("OK "); put_hex(out + 32768, (size_t)len); printf("\n"); }
    } else if (strcmp(line, "hpseal") == 0) {
      /* secret(32) nonce(24) plaintext encoding: print the sealed payload. */
      hsp_dht_holepunch_payload_t p;
      int err = n < 56 ? HSP_DHT_EMALFORMED : hsp_dht_holepunch_payload_decode(&p, in + 56, n - 56);
      long len = err ? err : hsp_dht_holepunch_payload_seal(out, sizeof(out), &p, in, in + 32);
      if (len < 0) printf("ERR %ld\n", len);
      else { printf("OK "); put_hex(out, (size_t)len); printf("\n"); }
    } else if (strcmp(line, "nat") == 0) {
      /* A sequence of 6-byte samples; print the sampler's verdict after each one. */
      hsp_dht_nat_sampler_t s;
      hsp_dht_nat_init(&s);
      printf("OK");
      for (size_t i = 0; i + 6 <= n; i += 6) {
        hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(in + i);
        int hits = hsp_dht_nat_add(&s, a.host, a.port);
        if (s.has_host) printf(" %u.%u.%u.%u:%u/%d", s.host[0], s.host[1], s.host[2], s.host[3], s.port, hits);
        else printf(" -/%d", hits);
      }
      printf("\n");
    } else {
      long len = hsp_dht_hyper_roundtrip(line, in, n, out, sizeof(out));
      if (len < 0) printf("ERR %ld\n", len);
      else { printf("OK "); put_hex(out, (size_t)len); printf("\n"); }
    }
    fflush(stdout);
  }
  return 0;
}
