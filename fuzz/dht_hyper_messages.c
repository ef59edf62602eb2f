// libs: hsp_dht
/* hyperdht value decoders: byte 0 of the input picks the codec, the rest is the value.
 * Whatever decodes must re-encode to a fixed point. */
#include <stdlib.h>
#include <string.h>

#include "hyper_messages.h"

static const char *CODECS[] = {"handshake",         "holepunch",          "noisePayload",
                               "holepunchPayload",  "peer",               "lookupRawReply",
                               "announce",          "mutablePutRequest",  "mutableGetResponse",
                               "pluginRequest"};
static uint8_t a[HSP_DHT_MAX_DATAGRAM], b[HSP_DHT_MAX_DATAGRAM];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *codec = CODECS[data[0] % (sizeof(CODECS) / sizeof(CODECS[0]))];
  long n = hsp_dht_hyper_roundtrip(codec, data + 1, size - 1, a, sizeof(a));
  if (n < 0) return 0;
  long n2 = hsp_dht_hyper_roundtrip(codec, a, (size_t)n, b, sizeof(b));
  if (n2 != n || memcmp(a, b, (size_t)n) != 0) abort();
  return 0;
}
