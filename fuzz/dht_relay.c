// libs: hsp_dht
/* Blind relay frame parser (what a relay server sends us): never crashes; a pair answer it
 * accepts round-trips through our pair encoder. The first 32 bytes are the token. */
#include <stdlib.h>
#include <string.h>

#include "relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 32) return 0;
  uint32_t id = 0;
  int r = hsp_dht_relay_parse(data + 32, size - 32, data, &id);
  if (r == 1) {
    uint8_t buf[64];
    uint32_t id2 = 0;
    long n = hsp_dht_relay_encode_pair(buf, sizeof(buf), false, data, id);
    if (n < 0 || hsp_dht_relay_parse(buf, (size_t)n, data, &id2) != 1 || id2 != id) abort();
  }
  return 0;
}
