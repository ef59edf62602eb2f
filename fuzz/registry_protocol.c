// libs: hsp_registry
/* Registry messages and log entries from the network: decoders must reject or accept
 * without crashing; accepted messages must re-encode to something that decodes the same;
 * the server and a replica must survive whatever they are fed. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "replica.h"
#include "server.h"

static void drop(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  (void)ud, (void)conn, (void)msg, (void)len;
}

static hsp_store_t *store;
static uint8_t sk[64];
static hsp_reg_server_t *server;
static hsp_reg_replica_t *replica;
static hsp_reg_client_t client;

static void setup(void) {
  uint8_t pk[32], seed[32] = {1};
  crypto_sign_seed_keypair(pk, sk, seed);
  if (hsp_store_open(&store, ":memory:", sk)) abort();
  hsp_reg_server_config_t cfg = {.store = store, .secret = sk, .send = drop};
  server = hsp_reg_server_new(&cfg);
  if (!server || hsp_reg_replica_open(&replica, ":memory:", pk)) abort();
  if (hsp_reg_client_init(&client, pk, sk, "svc", "1.0.0", "", 15000)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!store) setup();
  static hsp_reg_msg_t m, m2;
  if (hsp_reg_msg_decode(&m, data, size) == 0) {
    uint8_t *a, *b;
    long na = hsp_reg_msg_encode_alloc(&m, &a);
    if (na < 0) __builtin_trap();
    if (hsp_reg_msg_decode(&m2, a, (size_t)na) != 0) __builtin_trap();
    long nb = hsp_reg_msg_encode_alloc(&m2, &b);
    if (nb != na || memcmp(a, b, (size_t)na) != 0) __builtin_trap();
    free(a);
    free(b);
    hsp_reg_msg_free(&m2);
    hsp_reg_msg_free(&m);
  }
  hsp_reg_entry_t e;
  if (hsp_reg_entry_decode(&e, data, size) == 0) {
    uint8_t out[HSP_REG_ENTRY_MAX];
    if (hsp_reg_entry_encode(&e, out, sizeof out) < 0) __builtin_trap();
  }
  hsp_reg_server_handle(server, 1, data, size, 1700000000000ull);
  hsp_reg_replica_receive(replica, data, size);
  /* a client with a request in flight whose id the input may or may not carry */
  uint8_t *req;
  client.due_ms = 0;
  long n = hsp_reg_client_tick(&client, 1700000000000ull, &req);
  if (n > 0) free(req);
  client.pending_id = 1;
  hsp_reg_client_receive(&client, data, size, 1700000000000ull);
  return 0;
}
