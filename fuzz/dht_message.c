// libs: hsp_dht
/* dht-rpc datagram decoder: never crashes; whatever decodes re-encodes to a fixed point
 * (encode(decode(encode(decode(x)))) == encode(decode(x))). */
#include <stdlib.h>
#include <string.h>

#include "messages.h"

static uint8_t a[HSP_DHT_MAX_DATAGRAM], b[HSP_DHT_MAX_DATAGRAM];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (hsp_dht_message_type(data, size) == HSP_DHT_TYPE_REQUEST) {
    hsp_dht_request_t m, m2;
    if (hsp_dht_request_decode(&m, data, size) != 0) return 0;
    long n = hsp_dht_request_encode(a, sizeof(a), &m);
    if (n < 0) return 0; /* e.g. a value too large to fit a datagram with our header */
    if (hsp_dht_request_decode(&m2, a, (size_t)n) != 0) abort();
    long n2 = hsp_dht_request_encode(b, sizeof(b), &m2);
    if (n2 != n || memcmp(a, b, (size_t)n) != 0) abort();
    if (m2.tid != m.tid || m2.command != m.command || m2.internal != m.internal) abort();
  } else if (hsp_dht_message_type(data, size) == HSP_DHT_TYPE_RESPONSE) {
    hsp_dht_response_t m, m2;
    if (hsp_dht_response_decode(&m, data, size) != 0) return 0;
    long n = hsp_dht_response_encode(a, sizeof(a), &m);
    if (n < 0) return 0;
    if (hsp_dht_response_decode(&m2, a, (size_t)n) != 0) abort();
    long n2 = hsp_dht_response_encode(b, sizeof(b), &m2);
    if (n2 != n || memcmp(a, b, (size_t)n) != 0) abort();
    if (m2.closer_count != m.closer_count || m2.error != m.error) abort();
  }
  return 0;
}
