/*
 * A registry server on an in-memory store driven over stdin/stdout, for interop tests:
 *   argv[1] = registry Ed25519 seed (64 hex digits)
 *   stdin lines: "<conn> <now_ms> <message hex>"  (or "<conn> <now_ms> tick")
 *   stdout: for each line, the messages sent, as "<conn> <hex>" lines, then "."
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "server.h"

static void out(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  (void)ud;
  char *hex = malloc(2 * len + 1);
  hsp_hex_encode(hex, msg, len);
  printf("%llu %s\n", (unsigned long long)conn, hex);
  free(hex);
}

int main(int argc, char **argv) {
  uint8_t seed[32], pk[32], sk[64];
  if (argc < 2 || sodium_init() < 0 || hsp_hex_decode(seed, 32, argv[1])) return 2;
  crypto_sign_seed_keypair(pk, sk, seed);
  hsp_store_t *st;
  if (hsp_store_open(&st, ":memory:", sk)) return 3;
  hsp_reg_server_config_t cfg = {.store = st, .secret = sk, .send = out};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  static char line[1 << 20];
  static uint8_t msg[1 << 19];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = '\0';
    unsigned long long conn, now;
    int off = 0;
    if (sscanf(line, "%llu %llu %n", &conn, &now, &off) != 2) return 4;
    const char *hex = line + off;
    if (!strcmp(hex, "tick")) {
      hsp_reg_server_tick(srv, now);
    } else {
      size_t n = strlen(hex) / 2;
      if (n > sizeof msg || hsp_hex_decode(msg, n, hex)) return 5;
      hsp_reg_server_handle(srv, conn, msg, n, now);
    }
    printf(".\n");
    fflush(stdout);
  }
  if (hsp_store_verify(st)) return 6;
  hsp_reg_server_free(srv);
  hsp_store_close(st);
  return 0;
}
