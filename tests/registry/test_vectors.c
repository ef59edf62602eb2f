/* docs/protocol.md lists test vectors as lines "    vector <name> <hex>"; this test
 * regenerates each from fixed keys and checks the document still matches the code. With
 * "--print" it prints them instead (to update the document). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hex.h"
#include "protocol.h"
#include "store.h"

#define MAXV 8
static char names[MAXV][32];
static char hexes[MAXV][4096];
static int nv;

static void add(const char *name, const uint8_t *b, size_t n) {
  snprintf(names[nv], sizeof names[nv], "%s", name);
  hsp_hex_encode(hexes[nv], b, n);
  nv++;
}

static hsp_store_record_t first;
static uint8_t first_body[HSP_REG_ENTRY_MAX], first_hash[32], first_sig[64];
static int keep_first(void *ud, const hsp_store_record_t *r) {
  (void)ud;
  memcpy(first_body, r->body, r->body_len);
  memcpy(first_hash, r->hash, 32);
  memcpy(first_sig, r->sig, 64);
  first = (hsp_store_record_t){r->seq, first_body, r->body_len, first_hash, first_sig};
  return 1;
}

static void build(void) {
  uint8_t rpk[32], rsk[64], ipk[32], isk[64], rseed[32], iseed[32];
  memset(rseed, 1, 32);
  memset(iseed, 2, 32);
  crypto_sign_seed_keypair(rpk, rsk, rseed);
  crypto_sign_seed_keypair(ipk, isk, iseed);
  add("registry_public_key", rpk, 32);
  add("instance_public_key", ipk, 32);
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = 1;
  m.type = HSP_REG_MSG_REGISTER;
  memcpy(m.inst.key, ipk, 32);
  strcpy(m.inst.name, "couchdb");
  strcpy(m.inst.version, "3.2.2");
  strcpy(m.inst.tags, "{\"port\":5984}");
  m.inst.ttl_ms = 15000;
  memcpy(m.registry, rpk, 32);
  m.ts_ms = 1700000000000ull;
  hsp_reg_msg_sign(&m, isk);
  uint8_t buf[1024];
  long n = hsp_reg_msg_encode(&m, buf, sizeof buf);
  add("register", buf, (size_t)n);
  hsp_reg_msg_t q;
  memset(&q, 0, sizeof q);
  q.id = 2;
  q.type = HSP_REG_MSG_QUERY;
  strcpy(q.name, "couchdb");
  strcpy(q.range, "3.x");
  n = hsp_reg_msg_encode(&q, buf, sizeof buf);
  add("query", buf, (size_t)n);

  hsp_store_t *st;
  hsp_store_open(&st, ":memory:", rsk);
  hsp_store_register(st, &m.inst, NULL, 1700000000000ull, NULL);
  hsp_store_entries_after(st, 0, 1, keep_first, NULL);
  add("entry1_body", first.body, first.body_len);
  add("entry1_hash", first.hash, 32);
  add("entry1_sig", first.sig, 64);
  hsp_store_close(st);
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  build();
  if (argc > 1 && !strcmp(argv[1], "--print")) {
    for (int i = 0; i < nv; i++) printf("    vector %s %s\n", names[i], hexes[i]);
    return 0;
  }
  FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
  CHECK(f != NULL);
  if (!f) return check_summary("test_registry_vectors");
  static char line[8192];
  int matched = 0;
  while (fgets(line, sizeof line, f)) {
    char name[64], hex[4096];
    if (sscanf(line, " vector %63s %4095s", name, hex) != 2) continue;
    for (int i = 0; i < nv; i++) {
      if (strcmp(names[i], name)) continue;
      CHECK_EQ_STR(hex, hexes[i]);
      matched++;
    }
  }
  fclose(f);
  CHECK_EQ_INT(matched, nv);
  return check_summary("test_registry_vectors");
}
