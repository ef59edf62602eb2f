/* hyperseaport: the command-line entry point. Parses options, then hands each command to
 * the layer that implements it. */
#include "crypto.h"
#include "dht_cmds.h"
#include "hex.h"
#include "agent_cmds.h"
#include "options.h"
#include "reg_cmds.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define HSP_VERSION "0.1.0"

extern char **environ;

static int cmd_seed(const hsp_options_t *o) {
  uint8_t seed[HSP_KEY_BYTES];
  if (o->has_seed) memcpy(seed, o->registry_seed, sizeof seed);
  else randombytes_buf(seed, sizeof seed);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  char seed_hex[2 * HSP_KEY_BYTES + 1], pk_hex[2 * HSP_KEY_BYTES + 1];
  hsp_hex_encode(seed_hex, seed, sizeof seed);
  hsp_hex_encode(pk_hex, kp.public_key, sizeof kp.public_key);
  printf("registrySeed=%s\nregistryPublicKey=%s\n", seed_hex, pk_hex);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(seed_hex, sizeof seed_hex);
  hsp_crypto_keypair_wipe(&kp);
  return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (hsp_crypto_init() != 0) {
    fprintf(stderr, "hyperseaport: libsodium failed to initialise\n");
    return 1;
  }
  hsp_options_t opts;
  char err[2048];
  if (hsp_options_parse(&opts, argc - 1, argv + 1, environ, err, sizeof err) != 0) {
    fprintf(stderr, "hyperseaport: %s\n", err);
    return 2;
  }
  if (opts.version) {
    printf("hyperseaport %s\n", HSP_VERSION);
    return 0;
  }
  if (opts.help) {
    bool overview = opts.command == HSP_CMD_REGISTRY && (argc < 2 || argv[1][0] == '-');
    hsp_options_print_help(stdout, overview ? HSP_CMD_COUNT : opts.command);
    return 0;
  }
  int rc;
  switch (opts.command) {
  case HSP_CMD_SEED: rc = cmd_seed(&opts); break;
  case HSP_CMD_DHT_NODE: rc = hsp_cmd_dht_node(&opts); break;
  case HSP_CMD_PIPE: rc = hsp_cmd_pipe(&opts); break;
  case HSP_CMD_REGISTRY: rc = hsp_cmd_registry(&opts); break;
  case HSP_CMD_LS: rc = hsp_cmd_ls(&opts); break;
  case HSP_CMD_SERVICE: rc = hsp_cmd_service(&opts); break;
  case HSP_CMD_PROXY: rc = hsp_cmd_proxy(&opts); break;
  case HSP_CMD_WEB: rc = hsp_cmd_web(&opts); break;
  default: rc = 2; /* the option table has no other command */
  }
  sodium_memzero(&opts, sizeof opts);
  return rc;
}
