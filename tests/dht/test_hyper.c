/* hyperdht namespaces and signatures against the vectors of docs/protocol/hyperdht.md. */
#include <string.h>

#include "check.h"
#include "hex.h"
#include "hyper_crypto.h"

static bool eq(const uint8_t *b, size_t n, const char *hex) {
  char got[257];
  hsp_hex_encode(got, b, n);
  if (strcmp(got, hex) != 0) fprintf(stderr, "got  %s\nwant %s\n", got, hex);
  return strcmp(got, hex) == 0;
}

static void test_namespaces(void) {
  uint8_t ns[32];
  static const struct { uint8_t cmd; const char *hex; } v[] = {
    {0, "14d6d4b49214ab1033ed204976caa258bae9e1e8543b9ad1fd996a910b0c4e3a"},
    {1, "f1191cd5e67b10b54a507033280ed1ff0e12278268d5679c8f93d417210d168b"},
    {4, "36386adddf9f6fd60db83a6f42fc159d1146aa8644037664230aaa1f0179d497"},
    {5, "ded293cd93fb395e756ecf5fff426529e72c36eacc22e5ed944d9099a2561e32"},
    {6, "668e823edd5ce7f5338d68bf1161f4a3c28ce437ee2ab49efd30d99366039b1e"},
    {10, "6b8a2a8623f28c6c02a1e22abe515ce31cafd9af61d4b69970639aa7eb96a8d5"},
  };
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    hsp_dht_namespace(ns, v[i].cmd);
    CHECK(eq(ns, 32, v[i].hex));
  }
}

static void test_mutable_vector(void) {
  uint8_t seed[32], sig[64], signable[64];
  memset(seed, 0x11, 32);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  CHECK(kp.public_key[0] == 0xd0 && kp.public_key[1] == 0x4a && kp.public_key[31] == 0x37);
  hsp_bytes_t hello = {(const uint8_t *)"hello", 5};
  CHECK_EQ_INT(hsp_dht_mutable_signable(signable, 1, hello), 0);
  CHECK(eq(signable, 64, "668e823edd5ce7f5338d68bf1161f4a3c28ce437ee2ab49efd30d99366039b1e"
                         "aa1b682ba34869f178c04f6b3864203a9da6e538b590c482c21bd8938c297b54"));
  CHECK_EQ_INT(hsp_dht_mutable_sign(sig, 1, hello, &kp), 0);
  CHECK(eq(sig, 64, "6f0a9b2855ab4473bdde2231efa2b8564a4e07da2f43386932242e4af5743441"
                    "f89cbde92cb3b643d16d21747bf7b9d182cf9089966e30e6bf796b9bd2707202"));
  CHECK(hsp_dht_mutable_verify(sig, 1, hello, kp.public_key));
  CHECK(!hsp_dht_mutable_verify(sig, 2, hello, kp.public_key));
  uint8_t h[32];
  hsp_crypto_hash(h, hello.data, hello.len);
  CHECK(eq(h, 32, "324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf"));
}

static void test_announce_roundtrip(void) {
  uint8_t seed[32], target[32], id[32], token[32], sig[64];
  memset(seed, 0x22, 32);
  memset(id, 3, 32);
  memset(token, 4, 32);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  hsp_crypto_hash(target, kp.public_key, 32);
  hsp_dht_peer_t peer = {kp.public_key, {NULL, 0}};
  CHECK_EQ_INT(hsp_dht_announce_sign(sig, HSP_HYPER_ANNOUNCE, target, id, token, &peer, NULL, &kp), 0);
  CHECK(hsp_dht_announce_verify(sig, HSP_HYPER_ANNOUNCE, target, id, token, &peer, NULL));
  CHECK(!hsp_dht_announce_verify(sig, HSP_HYPER_UNANNOUNCE, target, id, token, &peer, NULL));
  token[0] ^= 1;
  CHECK(!hsp_dht_announce_verify(sig, HSP_HYPER_ANNOUNCE, target, id, token, &peer, NULL));
}

int main(void) {
  test_namespaces();
  test_mutable_vector();
  test_announce_roundtrip();
  return check_summary("dht_hyper");
}
