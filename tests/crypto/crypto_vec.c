/*
 * Helper for tests/interop/crypto_vectors.js: computes, with hsp_crypto, the values the Node
 * script computes with the JS reference from the same inputs, and prints them as
 * "name hex" lines. Inputs and outputs are hex; the script compares. Usage:
 *
 *   crypto_vec ids SEED MSG
 *   crypto_vec ik  I_SEED R_SEED I_EPH R_EPH PAYLOAD_I PAYLOAD_R
 *   crypto_vec xx  I_SEED R_SEED I_EPH R_EPH
 *   crypto_vec ss  INITIATOR(0|1) TX HASH HEADER MSG...      (deterministic frames)
 *   crypto_vec ssrecv INITIATOR(0|1) RX HASH RAW             (decrypt a captured stream)
 *   crypto_vec dgram INITIATOR(0|1) HASH COUNTER MSG         (seal one datagram)
 *   crypto_vec dgramopen INITIATOR(0|1) HASH DATAGRAM
 *   crypto_vec keyid KEY TEXT...                             (z32 of KEY; decode each TEXT)
 */
#include "crypto.h"
#include "hex.h"
#include "keyid.h"
#include "noise.h"
#include "secretstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Long arguments (over the kernel's per-argument limit) come as "@file" holding the hex. */
static char *read_arg(const char *text) {
  if (text[0] != '@') return strdup(text);
  FILE *f = fopen(text + 1, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", text + 1);
    exit(2);
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)size + 1);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) exit(2);
  buf[size] = '\0';
  fclose(f);
  return buf;
}

static uint8_t *unhex(const char *arg, size_t *len) {
  char *text = read_arg(arg);
  size_t n = strlen(text);
  if (n % 2) {
    fprintf(stderr, "odd hex length\n");
    exit(2);
  }
  uint8_t *out = malloc(n / 2 + 1);
  if (!out || hsp_hex_decode(out, n / 2, text) != 0) {
    fprintf(stderr, "bad hex: %.16s...\n", text);
    exit(2);
  }
  *len = n / 2;
  free(text);
  return out;
}

static void unhex_fixed(uint8_t *out, size_t len, const char *text) {
  if (hsp_hex_decode(out, len, text) != 0) {
    fprintf(stderr, "expected %zu hex bytes\n", len);
    exit(2);
  }
}

static void put(const char *name, const uint8_t *data, size_t len) {
  char *text = malloc(2 * len + 1);
  hsp_hex_encode(text, data, len);
  printf("%s %s\n", name, text);
  free(text);
}

static int die(const char *what, int rc) {
  printf("error %s %s\n", what, hsp_crypto_strerror(rc));
  return 1;
}

static int cmd_ids(char **argv) {
  uint8_t seed[32], out[32], sig[64];
  size_t mlen;
  unhex_fixed(seed, 32, argv[0]);
  uint8_t *msg = unhex(argv[1], &mlen);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  put("pk", kp.public_key, 32);
  put("sk", kp.secret_key, 64);
  hsp_crypto_discovery_key(out, kp.public_key);
  put("discovery_key", out, 32);
  hsp_crypto_hash(out, kp.public_key, 32);
  put("hash_pk", out, 32);
  hsp_crypto_sign(sig, msg, mlen, kp.secret_key);
  put("sig", sig, 64);
  printf("verify %d\n", hsp_crypto_verify(sig, msg, mlen, kp.public_key));
  sig[0] ^= 1;
  printf("verify_tampered %d\n", hsp_crypto_verify(sig, msg, mlen, kp.public_key));

  static const uint8_t dht_ids[] = {0, 1, 4, 5, 6, 10};
  static const uint8_t ss_ids[] = {0, 1, 2};
  uint8_t dht[6][32], ss[3][32];
  hsp_crypto_namespace(dht, "hyperswarm/dht", dht_ids, 6);
  hsp_crypto_namespace(ss, "hyperswarm/secret-stream", ss_ids, 3);
  const uint8_t *consts[] = {HSP_NS_PEER_HANDSHAKE, HSP_NS_PEER_HOLEPUNCH, HSP_NS_ANNOUNCE,
                             HSP_NS_UNANNOUNCE,     HSP_NS_MUTABLE_PUT,    HSP_NS_PLUGIN,
                             HSP_NS_SS_INITIATOR,   HSP_NS_SS_RESPONDER,   HSP_NS_SS_SEND};
  char name[32];
  for (int i = 0; i < 6; i++) {
    snprintf(name, sizeof name, "ns_dht_%u", dht_ids[i]);
    put(name, dht[i], 32);
    snprintf(name, sizeof name, "const_dht_%u", dht_ids[i]);
    put(name, consts[i], 32);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "ns_ss_%u", ss_ids[i]);
    put(name, ss[i], 32);
    snprintf(name, sizeof name, "const_ss_%u", ss_ids[i]);
    put(name, consts[6 + i], 32);
  }
  free(msg);
  return 0;
}

static void four_keys(char **argv, hsp_crypto_keypair_t kp[4]) {
  for (int i = 0; i < 4; i++) {
    uint8_t seed[32];
    unhex_fixed(seed, 32, argv[i]);
    hsp_crypto_keypair_from_seed(&kp[i], seed);
  }
}

static void put_result(const char *prefix, const hsp_noise_result_t *r) {
  char name[64];
  snprintf(name, sizeof name, "%s_tx", prefix);
  put(name, r->tx, 32);
  snprintf(name, sizeof name, "%s_rx", prefix);
  put(name, r->rx, 32);
  snprintf(name, sizeof name, "%s_hash", prefix);
  put(name, r->hash, 64);
  snprintf(name, sizeof name, "%s_remote", prefix);
  put(name, r->remote_public_key, 32);
}

/* Runs a whole handshake between two in-process states, printing each message. */
static int run_pair(hsp_noise_t *ini, hsp_noise_t *res, const uint8_t *pay[2], size_t plen[2]) {
  hsp_noise_t *side[2] = {ini, res};
  uint8_t msg[HSP_NOISE_MAX_MESSAGE], got[HSP_NOISE_MAX_MESSAGE];
  for (int i = 0; !hsp_noise_is_complete(ini) || !hsp_noise_is_complete(res); i++) {
    hsp_noise_t *w = side[i % 2], *r = side[1 - i % 2];
    size_t len, glen;
    int rc = hsp_noise_write_message(w, pay[i % 2], plen[i % 2], msg, sizeof msg, &len);
    if (rc) return die("write", rc);
    char name[32];
    snprintf(name, sizeof name, "msg%d", i + 1);
    put(name, msg, len);
    rc = hsp_noise_read_message(r, msg, len, got, sizeof got, &glen);
    if (rc) return die("read", rc);
    snprintf(name, sizeof name, "payload%d", i + 1);
    put(name, got, glen);
  }
  hsp_noise_result_t ri, rr;
  hsp_noise_get_result(ini, &ri);
  hsp_noise_get_result(res, &rr);
  put_result("initiator", &ri);
  put_result("responder", &rr);
  uint8_t out[32];
  hsp_noise_holepunch_secret(out, ri.hash);
  put("holepunch_secret", out, 32);
  hsp_crypto_stream_id(out, ri.hash, true);
  put("stream_id_initiator", out, 32);
  hsp_crypto_stream_id(out, ri.hash, false);
  put("stream_id_responder", out, 32);
  return 0;
}

static int cmd_ik(char **argv) {
  hsp_crypto_keypair_t kp[4];
  four_keys(argv, kp);
  size_t plen[2];
  uint8_t *p0 = unhex(argv[4], &plen[0]), *p1 = unhex(argv[5], &plen[1]);
  const uint8_t *pay[2] = {p0, p1};
  hsp_noise_t ini, res;
  int rc = hsp_noise_init_hyperdht(&ini, &kp[0], kp[1].public_key);
  if (!rc) rc = hsp_noise_init_hyperdht(&res, &kp[1], NULL);
  if (!rc) rc = hsp_noise_set_ephemeral(&ini, &kp[2]);
  if (!rc) rc = hsp_noise_set_ephemeral(&res, &kp[3]);
  if (rc) return die("init", rc);
  rc = run_pair(&ini, &res, pay, plen);
  hsp_noise_wipe(&ini);
  hsp_noise_wipe(&res);
  free(p0);
  free(p1);
  return rc;
}

static int cmd_xx(char **argv) {
  hsp_crypto_keypair_t kp[4];
  four_keys(argv, kp);
  const uint8_t *pay[2] = {NULL, NULL};
  size_t plen[2] = {0, 0};
  hsp_noise_t ini, res;
  int rc = hsp_noise_init(&ini, HSP_NOISE_XX, true, &kp[0], NULL, NULL, 0);
  if (!rc) rc = hsp_noise_init(&res, HSP_NOISE_XX, false, &kp[1], NULL, NULL, 0);
  if (!rc) rc = hsp_noise_set_ephemeral(&ini, &kp[2]);
  if (!rc) rc = hsp_noise_set_ephemeral(&res, &kp[3]);
  if (rc) return die("init", rc);
  return run_pair(&ini, &res, pay, plen);
}

typedef struct sink {
  uint8_t *data;
  size_t len;
  int messages;
} sink_t;

static int sink_write(void *user, const uint8_t *data, size_t len) {
  sink_t *s = user;
  uint8_t *p = realloc(s->data, s->len + len);
  if (!p) return -1;
  memcpy(p + s->len, data, len);
  s->data = p;
  s->len += len;
  return 0;
}

static int print_message(void *user, uint8_t *msg, size_t len) {
  sink_t *s = user;
  char name[32];
  snprintf(name, sizeof name, "message%d", ++s->messages);
  put(name, msg, len);
  return 0;
}

static void handshake_from_args(hsp_noise_result_t *hs, bool initiator, const char *key,
                                bool key_is_tx, const char *hash) {
  memset(hs, 0, sizeof *hs);
  hs->is_initiator = initiator;
  unhex_fixed(key_is_tx ? hs->tx : hs->rx, 32, key);
  unhex_fixed(hs->hash, 64, hash);
}

static int cmd_ss(int argc, char **argv) {
  bool initiator = argv[0][0] == '1';
  hsp_noise_result_t hs;
  handshake_from_args(&hs, initiator, argv[1], true, argv[2]);
  uint8_t header[24];
  unhex_fixed(header, 24, argv[3]);
  sink_t sink = {0};
  hsp_ss_config_t cfg = {.is_initiator = initiator, .handshake = &hs, .write = sink_write,
                         .on_message = print_message, .user = &sink, .test_push_header = header};
  hsp_ss_t ss;
  int rc = hsp_ss_init(&ss, &cfg);
  if (!rc) rc = hsp_ss_start(&ss, 0);
  for (int i = 4; i < argc && !rc; i++) {
    size_t len;
    uint8_t *msg = unhex(argv[i], &len);
    rc = hsp_ss_write(&ss, msg, len, 0);
    free(msg);
  }
  if (rc) return die("ss", rc);
  put("raw", sink.data, sink.len);
  hsp_ss_destroy(&ss);
  free(sink.data);
  return 0;
}

static int cmd_ssrecv(char **argv) {
  bool initiator = argv[0][0] == '1';
  hsp_noise_result_t hs;
  handshake_from_args(&hs, initiator, argv[1], false, argv[2]);
  /* Any transmit key works: this side only reads. */
  randombytes_buf(hs.tx, sizeof hs.tx);
  size_t len;
  uint8_t *raw = unhex(argv[3], &len);
  sink_t sink = {0};
  hsp_ss_config_t cfg = {.is_initiator = initiator, .handshake = &hs, .write = sink_write,
                         .on_message = print_message, .user = &sink};
  hsp_ss_t ss;
  int rc = hsp_ss_init(&ss, &cfg);
  if (!rc) rc = hsp_ss_start(&ss, 0);
  if (!rc) rc = hsp_ss_recv(&ss, raw, len, 0);
  if (!rc) rc = hsp_ss_recv_end(&ss);
  free(raw);
  hsp_ss_destroy(&ss);
  free(sink.data);
  if (rc) return die("ssrecv", rc);
  printf("messages %d\n", sink.messages);
  return 0;
}

static int cmd_dgram(char **argv) {
  uint8_t hash[64], counter[8];
  unhex_fixed(hash, 64, argv[1]);
  unhex_fixed(counter, 8, argv[2]);
  size_t len, out_len;
  uint8_t *msg = unhex(argv[3], &len);
  uint8_t *out = malloc(len + HSP_SS_DGRAM_OVERHEAD);
  hsp_ss_dgram_t d;
  hsp_ss_dgram_init(&d, hash, argv[0][0] == '1', counter);
  put("send_key", d.send_key, 32);
  put("recv_key", d.recv_key, 32);
  int rc = hsp_ss_dgram_seal(&d, out, len + HSP_SS_DGRAM_OVERHEAD, &out_len, msg, len);
  if (!rc) put("datagram", out, out_len);
  hsp_ss_dgram_wipe(&d);
  free(msg);
  free(out);
  return rc ? die("dgram", rc) : 0;
}

static int cmd_dgramopen(char **argv) {
  uint8_t hash[64];
  unhex_fixed(hash, 64, argv[1]);
  size_t len, out_len;
  uint8_t *in = unhex(argv[2], &len);
  uint8_t *out = malloc(len + 1);
  hsp_ss_dgram_t d;
  hsp_ss_dgram_init(&d, hash, argv[0][0] == '1', NULL);
  int rc = hsp_ss_dgram_open(&d, out, len + 1, &out_len, in, len);
  if (!rc) put("plain", out, out_len);
  hsp_ss_dgram_wipe(&d);
  free(in);
  free(out);
  return rc ? die("dgramopen", rc) : 0;
}

static int cmd_keyid(int argc, char **argv) {
  uint8_t key[32];
  unhex_fixed(key, 32, argv[0]);
  char z[HSP_Z32_KEY_CHARS + 1];
  hsp_crypto_key_encode(z, key);
  printf("z32 %s\n", z);
  for (int i = 1; i < argc; i++) {
    char name[32];
    snprintf(name, sizeof name, "decode%d", i);
    if (hsp_crypto_key_decode(key, argv[i]) == 0) put(name, key, 32);
    else printf("%s invalid\n", name);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (hsp_crypto_init() != 0) return 1;
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  int n = argc - 2;
  char **a = argv + 2;
  if (!strcmp(cmd, "ids") && n == 2) return cmd_ids(a);
  if (!strcmp(cmd, "ik") && n == 6) return cmd_ik(a);
  if (!strcmp(cmd, "xx") && n == 4) return cmd_xx(a);
  if (!strcmp(cmd, "ss") && n >= 4) return cmd_ss(n, a);
  if (!strcmp(cmd, "ssrecv") && n == 4) return cmd_ssrecv(a);
  if (!strcmp(cmd, "dgram") && n == 4) return cmd_dgram(a);
  if (!strcmp(cmd, "dgramopen") && n == 3) return cmd_dgramopen(a);
  if (!strcmp(cmd, "keyid") && n >= 1) return cmd_keyid(n, a);
  fprintf(stderr, "usage: see the comment at the top of crypto_vec.c\n");
  return 2;
}
